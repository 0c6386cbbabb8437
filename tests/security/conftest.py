"""Real parts for the security suite: the API as its own process (`backout api`, uvicorn) on the
suite's Temporal dev server, the real worker, and a recording Prometheus.

The recording Prometheus answers the HTTP API's query_range as Prometheus does (a matrix of one
series) and records every query it receives, so a test sees exactly the PromQL backout sent and
the range it asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from config import EvidenceQuery, Settings
from tests.fixtures.temporal import backout_process, running_worker, settings_for, unique_name
from worker.temporal_client import connect
from worker.temporal_server import TemporalDevServer, free_port

SENDER = "sender-token-for-the-security-suite"
REPORTER = "reporter-token-for-the-security-suite"
OPERATOR = "operator-token-for-the-security-suite"
METRICS = "metrics-token-for-the-security-suite"
SIGNING_SECRET = "slack-signing-secret-of-the-security-suite"
APPROVER = "U0ALICE01"
APPROVER_EMAIL = "oncall@example.com"
OUTSIDER = "U0MALLORY"
ALLOWED = ["prod", "staging"]

OWNERS_YAML = f"""
teams:
  ml-platform:
    slack_channel: "#ml-incidents"
    approvers: [{APPROVER}, {APPROVER_EMAIL}]
services:
  - {{service: rag-api, namespace: prod, team: ml-platform}}
"""

ERROR_RATE = EvidenceQuery(
    name="error_rate",
    query='sum by (service) (rate(errors_total{namespace="{namespace}",service="{service}"}[5m]))',
)
LATENCY = EvidenceQuery(
    name="latency_ms",
    query='histogram_quantile(0.99, rate(latency_bucket{service="{service}"}[5m]))',
    run="when_named",
)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or the socket's timeout)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return data
        if not chunk:
            return data
        data += chunk


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class RecordedQuery:
    query: str
    start: float
    end: float
    step: float
    authorization: str | None


class RecordingPrometheus:
    """Prometheus's query_range on loopback: one flat series per query, every query recorded."""

    def __init__(self) -> None:
        self.queries: list[RecordedQuery] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/api/v1/query_range":
                    self.send_error(404)
                    return
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
                recorder.queries.append(
                    RecordedQuery(params["query"], start, end, step, self.headers.get("Authorization"))
                )
                values = [[start + i * step, "0.5"] for i in range(min(50, int((end - start) / step) + 1))]
                body = json.dumps(
                    {
                        "status": "success",
                        "data": {
                            "resultType": "matrix",
                            "result": [{"metric": {"service": "rag-api"}, "values": values}],
                        },
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> RecordingPrometheus:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def recording_prometheus() -> Iterator[RecordingPrometheus]:
    with RecordingPrometheus() as prometheus:
        yield prometheus


def start_refused(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`backout api` with `env`: it must refuse to start (exit 2, the reason on stderr)."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("BACKOUT_")}
    clean.update(
        {
            "BACKOUT_STATE_DIR": str(tmp_path / "state"),
            "BACKOUT_TEMPORAL_ADDRESS": "127.0.0.1:1",
            "BACKOUT_API_PORT": str(free_port()),
            "BACKOUT_ALLOWED_NAMESPACES": "prod",
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "api"], env=clean, capture_output=True, text=True, timeout=60
    )


def secure_settings(server: TemporalDevServer, state_dir: Path, **overrides: Any) -> Settings:
    """Settings as a careful production install would have them: every role its token, a real allow
    list, Slack signing, an ownership file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    owners = state_dir / "owners.yaml"
    owners.write_text(OWNERS_YAML, encoding="utf-8")
    port = free_port()
    values: dict[str, Any] = {
        "api_port": port,
        "public_url": f"http://127.0.0.1:{port}",
        "sender_token": SecretStr(SENDER),
        "reporter_token": SecretStr(REPORTER),
        "operator_token": SecretStr(OPERATOR),
        "metrics_token": SecretStr(METRICS),
        "operator_identity": APPROVER_EMAIL,
        "allow_anonymous_loopback": False,
        "allowed_namespaces": ALLOWED,
        "slack_signing_secret": SecretStr(SIGNING_SECRET),
        "ownership_file": owners,
        "evidence_queries": [ERROR_RATE, LATENCY],
        "max_evidence_queries": 4,
        "lookback_s": 3600,
        "incident_settle_s": 0.2,
        # Handled incidents stay open a while, as in production: later notifications join them.
        "incident_cooldown_s": 30.0,
        "api_header_timeout_s": 1.0,
        "api_body_timeout_s": 2.0,
        "task_queue": unique_name("security"),
    }
    values.update(overrides)
    return settings_for(server, state_dir, **values)


@dataclass
class ApiProcess:
    """`backout api` running in a process of its own."""

    settings: Settings
    process: subprocess.Popen[bytes]
    log: Path
    url: str = field(init=False)

    def __post_init__(self) -> None:
        scheme = "https" if self.settings.api_tls_cert_file is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.settings.api_port}"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_api(settings: Settings, log_name: str = "api.log", **http_options: Any) -> ApiProcess:
    """`backout api` with `settings`, once /healthz answers and it reaches Temporal. `http_options`:
    how the health check connects (httpx: `verify`, an SSL context with a client certificate)."""
    process = backout_process(settings, "api", log_name=log_name)
    api = ApiProcess(settings, process, settings.state_dir / log_name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"backout api exited with {process.returncode}:\n{api.output()}")
        with contextlib.suppress(httpx.HTTPError):
            health = httpx.get(f"{api.url}/healthz", timeout=2, **http_options).json()
            if health.get("temporal") == "ok":
                return api
        time.sleep(0.2)
    api.stop()
    raise AssertionError(f"backout api did not come up:\n{api.output()}")


@dataclass
class SecureStack:
    api: ApiProcess
    settings: Settings
    client: Client
    prometheus: RecordingPrometheus

    def http(self, token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api.url, headers=bearer(token) if token else {}, timeout=30, **kwargs
        )


@pytest.fixture(scope="module")
async def secure_stack(
    temporal_server: TemporalDevServer,
    tmp_path_factory: pytest.TempPathFactory,
    recording_prometheus: RecordingPrometheus,
) -> AsyncIterator[SecureStack]:
    """The API process and a real worker on the suite's Temporal, with a recording Prometheus."""
    state = tmp_path_factory.mktemp("security")
    settings = secure_settings(temporal_server, state / "state", prometheus_url=recording_prometheus.url)
    api = await asyncio.to_thread(start_api, settings)
    client = await connect(settings, attempts=20)
    try:
        async with running_worker(client, settings):
            yield SecureStack(api, settings, client, recording_prometheus)
    finally:
        api.stop()


async def wait_for_state(
    http: httpx.AsyncClient, incident_id: str, states: set[str], timeout_s: float = 60
) -> dict[str, Any]:
    """The incident's view once it is in one of `states`."""
    deadline = time.monotonic() + timeout_s
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await http.get(f"/v1/incidents/{incident_id}")
        if response.status_code == 200:
            view = response.json()
            if view["state"] in states:
                return view
        await asyncio.sleep(0.2)
    raise AssertionError(f"incident {incident_id} not in {states}: {view.get('state')}")
