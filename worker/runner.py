"""Process orchestration for `backout up`, `backout worker` and `backout api`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

import uvicorn

from api.app import create_app
from api.auth import is_loopback_host
from api.transport import check_tls_files, server_config
from config import Settings, SettingsError
from config.redact import install_log_redaction
from config.settings import ROLE_TOKENS
from worker.temporal_client import connect
from worker.temporal_server import DevServerConfig, TemporalDevServer, free_port
from worker.worker import run_worker

log = logging.getLogger("backout")


def check_start_safety(settings: Settings, with_api: bool = True, with_worker: bool = True) -> None:
    """Refuse settings that would let backout act or listen more widely than anyone decided."""
    if not settings.allowed_namespaces:
        raise SettingsError(
            "allowed_namespaces is empty: set BACKOUT_ALLOWED_NAMESPACES to the namespaces backout may "
            'look at and change (or "*" for every namespace, on purpose)'
        )
    if not with_api:
        return
    check_tls_files(settings)
    loopback = is_loopback_host(settings.api_host)
    if settings.allow_anonymous_loopback and not loopback:
        raise SettingsError(
            f"allow_anonymous_loopback is only for an API on loopback, not on {settings.api_host}: "
            "give each role its token instead"
        )
    configured = [role for role in ROLE_TOKENS if settings.role_token(role) is not None]
    if not loopback and not configured:
        raise SettingsError(
            f"api_host {settings.api_host} is not a loopback address and no API credential is set: set "
            "BACKOUT_SENDER_TOKEN, BACKOUT_REPORTER_TOKEN and BACKOUT_OPERATOR_TOKEN (each its own)"
        )
    closed = [role for role in ROLE_TOKENS if role not in configured]
    if closed and not settings.allow_anonymous_loopback:
        log.warning(
            "no token for API role(s) %s: their endpoints answer 401 (README, Security)", ", ".join(closed)
        )


def _install_stop_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


async def _serve_api(settings: Settings, stop: asyncio.Event, temporal_ui_url: str | None) -> None:
    app = create_app(settings, lambda: connect(settings, attempts=3), temporal_ui_url=temporal_ui_url)
    # Header and body timeouts, the concurrency limit and the header cap (api/transport.py).
    server = uvicorn.Server(server_config(app, settings))
    # uvicorn captures SIGINT/SIGTERM while serving and re-raises them on exit, which reaches
    # the loop handler installed by run_up and stops the worker too.
    task = asyncio.create_task(server.serve())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    await task
    stopper.cancel()
    stop.set()


async def run_up(settings: Settings, with_worker: bool = True, with_api: bool = True) -> None:
    install_log_redaction()
    check_start_safety(settings, with_api=with_api, with_worker=with_worker)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    server: TemporalDevServer | None = None
    ui_url: str | None = None
    if settings.temporal_address is None and with_worker and with_api:
        server = TemporalDevServer(
            DevServerConfig(
                db_file=settings.temporal_db_file,
                port=settings.temporal_port,
                ui_port=settings.temporal_ui_port if settings.temporal_ui else None,
                log_file=settings.state_dir / "temporal.log",
            )
        )
        server.start()
        ui_url = server.ui_url
        log.warning(
            "temporal dev server on %s (UI %s), state in %s",
            server.address,
            ui_url,
            settings.temporal_db_file,
        )
    stop = asyncio.Event()
    _install_stop_handlers(stop)
    try:
        tasks = []
        if with_worker and with_api:
            # Its own process: incident work never holds the API's GIL, and both cores are used.
            metrics_port = free_port()
            settings = settings.model_copy(
                update={"worker_metrics_url": f"http://127.0.0.1:{metrics_port}/metrics"}
            )
            tasks.append(asyncio.create_task(_supervise_worker(settings, stop, metrics_port)))
        elif with_worker:
            client = await connect(settings, attempts=60)
            tasks.append(asyncio.create_task(run_worker(client, settings, stop)))
        if with_api:
            tasks.append(asyncio.create_task(_serve_api(settings, stop, ui_url)))
            scheme = "https" if settings.api_tls_cert_file is not None else "http"
            mutual = " (client certificates required)" if settings.api_tls_client_ca_file is not None else ""
            log.warning("backout API on %s://%s:%s%s", scheme, settings.api_host, settings.api_port, mutual)
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        stop.set()
        for task in tasks:
            await task
    finally:
        if server is not None:
            server.stop()


def _lower_priority(pid: int, niceness: int) -> None:
    if niceness <= 0:
        return
    try:
        current = os.getpriority(os.PRIO_PROCESS, pid)
        os.setpriority(os.PRIO_PROCESS, pid, min(19, current + niceness))
    except OSError as exc:  # e.g. a sandbox that forbids it: run at the same priority
        log.warning("could not lower the worker's CPU priority: %s", exc)


async def _supervise_worker(settings: Settings, stop: asyncio.Event, metrics_port: int) -> None:
    """Run `backout worker` as a child process; restart it if it dies; stop it gracefully."""
    env = dict(os.environ)
    env["BACKOUT_WORKER_METRICS_PORT"] = str(metrics_port)
    env["BACKOUT_STATE_DIR"] = str(settings.state_dir)
    env["BACKOUT_TEMPORAL_ADDRESS"] = settings.effective_temporal_address
    argv = [sys.executable, "-m", "worker.cli", "worker"]
    while not stop.is_set():
        child = await asyncio.create_subprocess_exec(*argv, env=env)
        _lower_priority(child.pid, settings.worker_niceness)
        waiter = asyncio.create_task(child.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if stop.is_set():
            if child.returncode is None:
                child.terminate()
                try:
                    await asyncio.wait_for(waiter, timeout=30)
                except TimeoutError:
                    child.kill()
                    await waiter
            return
        log.warning("worker process exited with code %s; restarting it", child.returncode)
        await asyncio.sleep(1.0)
