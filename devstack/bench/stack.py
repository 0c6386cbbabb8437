"""A private `backout up` (embedded Temporal, worker, API) on free ports, for `backout bench --spawn`."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx

from devstack.process import ManagedProcess, ProcessStartError, free_port


class SpawnedStack:
    """Runs `backout up` in a temporary state directory; `url` and `token` address its API."""

    def __init__(
        self,
        state_dir: Path | None = None,
        startup_timeout_s: float = 120.0,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="backout-bench-")
            state_dir = Path(self._tempdir.name)
        self.state_dir = state_dir
        self.api_port = free_port()
        self.temporal_port = free_port()
        # One credential per API role (README "Security"): the bench sends alerts and reports
        # changes, and reads incidents as an operator.
        self.token = secrets.token_urlsafe(24)  # sender
        self.reporter_token = secrets.token_urlsafe(24)
        self.operator_token = secrets.token_urlsafe(24)
        self.startup_timeout_s = startup_timeout_s
        self.extra_env = dict(extra_env or {})
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BACKOUT_")}
        env.update(
            BACKOUT_STATE_DIR=str(self.state_dir),
            BACKOUT_API_HOST="127.0.0.1",
            BACKOUT_API_PORT=str(self.api_port),
            BACKOUT_SENDER_TOKEN=self.token,
            BACKOUT_REPORTER_TOKEN=self.reporter_token,
            BACKOUT_OPERATOR_TOKEN=self.operator_token,
            BACKOUT_ALLOWED_NAMESPACES="*",
            BACKOUT_PUBLIC_URL=self.url,
            BACKOUT_TEMPORAL_PORT=str(self.temporal_port),
            BACKOUT_TEMPORAL_UI="false",
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        argv = [sys.executable, "-c", "from worker.cli import main; main()", "up"]
        self.process = ManagedProcess(
            "backout-up", argv, self.state_dir / "backout-up.log", env=self._environment()
        )
        self.process.start()
        self.process.wait_http_ready(f"{self.url}/healthz", timeout_s=self.startup_timeout_s)
        deadline = time.monotonic() + self.startup_timeout_s
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            health = httpx.get(f"{self.url}/healthz", timeout=5, trust_env=False).json()
            if health.get("temporal") == "ok" and health.get("worker") == "ok":
                return  # timings start warm: the first incident does not wait for the worker to start
            time.sleep(0.2)
        self.stop()
        raise ProcessStartError(
            f"backout up at {self.url} not ready: temporal {health.get('temporal')}, worker {health.get('worker')}"
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout_s=20)
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> SpawnedStack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
