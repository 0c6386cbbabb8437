"""Git over HTTP on loopback: bare repositories served by Git's own `git http-backend` (CGI).

A small threaded HTTP server turns each request into one CGI run of `git http-backend`,
so clone, fetch and push speak the real smart-HTTP protocol (v0 and v2) to real clients:
the `git` command, and go-git inside Flux's source-controller. With credentials set,
every request needs HTTP Basic auth (username + token), as a hosted Git server would.
"""

from __future__ import annotations

import base64
import hmac
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack.process import free_port

GIT_HTTP_BACKEND_CANDIDATES = ("/usr/lib/git-core/git-http-backend", "/usr/libexec/git-core/git-http-backend")


class GitServerError(RuntimeError):
    """The server could not start, or a repository could not be created; the message says why."""


@dataclass(frozen=True)
class BasicCredentials:
    username: str
    token: str

    def matches(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header.removeprefix("Basic ").strip()).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        username, _, token = decoded.partition(":")
        return hmac.compare_digest(username, self.username) and hmac.compare_digest(token, self.token)


@dataclass
class ServedRequest:
    """What the server saw, for tests: never the credentials themselves."""

    method: str
    path: str
    status: int
    user: str | None


@dataclass
class _ServerState:
    root: Path
    backend: str
    credentials: BasicCredentials | None
    requests: list[ServedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def git_http_backend() -> str:
    completed = subprocess.run(["git", "--exec-path"], capture_output=True, text=True)
    candidates = (
        [str(Path(completed.stdout.strip()) / "git-http-backend")] if completed.returncode == 0 else []
    )
    for candidate in [*candidates, *GIT_HTTP_BACKEND_CANDIDATES]:
        if Path(candidate).exists():
            return candidate
    raise GitServerError("git http-backend not found: install Debian's `git` package")


def _read_chunked(stream: Any) -> bytes:
    body = bytearray()
    while True:
        size_line = stream.readline()
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        body += stream.read(size)
        stream.readline()


class _GitHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "backout-git/1"
    state: _ServerState

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _record(self, status: int, user: str | None) -> None:
        with self.state.lock:
            self.state.requests.append(ServedRequest(self.command, self.path, status, user))

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = _read_chunked(self.rfile)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        credentials = self.state.credentials
        user = None
        if credentials is not None:
            if not credentials.matches(self.headers.get("Authorization")):
                self._record(401, None)
                self._reply(
                    401, b"authentication required\n", {"WWW-Authenticate": 'Basic realm="backout-git"'}
                )
                return
            user = credentials.username
        path, _, query = self.path.partition("?")
        env = {
            "GIT_PROJECT_ROOT": str(self.state.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "SERVER_PROTOCOL": "HTTP/1.1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "PATH": "/usr/bin:/bin",
        }
        if user is not None:
            # http-backend allows pushes only to an authenticated user (or with http.receivepack).
            env["REMOTE_USER"] = user
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        completed = subprocess.run([self.state.backend], input=body, env=env, capture_output=True)
        head, _, payload = completed.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = completed.stdout.partition(b"\n\n")
        status = 200
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        if completed.returncode != 0 and status == 200:
            status = 500
            payload = completed.stderr[-2000:]
            headers = {"Content-Type": "text/plain"}
        self._record(status, user)
        self._reply(status, payload, headers)


class GitHttpServer:
    """Serves every bare repository under `root` at http://127.0.0.1:PORT/<name>.git."""

    def __init__(
        self, root: Path, credentials: BasicCredentials | None = None, port: int | None = None
    ) -> None:
        self.root = root
        self.credentials = credentials
        self._port = port
        self._state = _ServerState(root=root, backend=git_http_backend(), credentials=credentials)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise GitServerError("the Git server is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, repository: str) -> str:
        return f"{self.base_url}/{repository}.git"

    @property
    def requests(self) -> list[ServedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def create_repository(self, name: str, branch: str = "main") -> Path:
        """An empty bare repository `<root>/<name>.git` whose HEAD names `branch`."""
        if not name or "/" in name or name.startswith("."):
            raise GitServerError(f"repository name {name!r}: use a plain name like `fleet`")
        path = self.root / f"{name}.git"
        if path.exists():
            raise GitServerError(f"repository {name} already exists at {path}")
        self.root.mkdir(parents=True, exist_ok=True)
        completed = subprocess.run(
            ["git", "init", "--quiet", "--bare", f"--initial-branch={branch}", str(path)],
            capture_output=True,
            text=True,
        )
        if completed.returncode != 0:
            raise GitServerError(f"git init --bare {path} failed: {completed.stderr.strip()}")
        return path

    def start(self) -> GitHttpServer:
        if self._server is not None:
            return self
        handler = type("BoundGitHandler", (_GitHandler,), {"state": self._state})
        try:
            self._server = ThreadingHTTPServer(("127.0.0.1", self._port or free_port()), handler)
        except OSError as exc:
            raise GitServerError(f"cannot bind the Git server: {exc}") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="git-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> GitHttpServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
