"""Start a local server process, wait until it answers, stop it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

import httpx


class ProcessStartError(RuntimeError):
    """A managed process exited or never became ready; the message carries its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free right now (bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, max_chars: int = 3000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return text[-max_chars:]


class ManagedProcess:
    """One child process whose output goes to a log file; usable as a context manager."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_file: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_file = log_file
        self.cwd = cwd
        self.env = env
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> None:
        if self._popen is not None:
            raise ProcessStartError(f"{self.name}: already started")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_file.open("ab")
        try:
            self._popen = subprocess.Popen(
                self.argv,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env=self.env,
                # Own process group: a Ctrl-C in the parent terminal is handled by stop(), not twice.
                start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            raise ProcessStartError(f"{self.name}: cannot run {self.argv[0]}: {exc}") from exc

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def wait_http_ready(self, url: str, timeout_s: float = 30.0) -> None:
        """Poll `url` until it answers 200; fail early with the log tail if the process dies."""
        deadline = time.monotonic() + timeout_s
        last_error = "no answer yet"
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if not self.running():
                    raise ProcessStartError(
                        f"{self.name} exited during startup (code {self.returncode()}); log:\n"
                        f"{_log_tail(self.log_file)}"
                    )
                try:
                    response = client.get(url)
                    if response.status_code == 200:
                        return
                    last_error = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    last_error = str(exc) or type(exc).__name__
                time.sleep(0.1)
        self.stop()
        raise ProcessStartError(
            f"{self.name} not ready at {url} after {timeout_s:.0f}s ({last_error}); log:\n"
            f"{_log_tail(self.log_file)}"
        )

    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, wait, then SIGKILL; idempotent."""
        popen = self._popen
        if popen is not None and popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(popen.pid, signal.SIGKILL)
                popen.wait(timeout=timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL, as a node loss or the OOM killer ends a process: no shutdown code runs."""
        popen = self._popen
        if popen is not None and popen.poll() is None:
            popen.kill()
            popen.wait(timeout=10)

    def log_tail(self, max_chars: int = 3000) -> str:
        return _log_tail(self.log_file, max_chars)

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
