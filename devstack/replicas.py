"""Many replicas behind one address on one machine: `backout api` processes behind a loopback load
balancer and `backout worker` processes, all on one Temporal server (the chart's topology without
Kubernetes), for the multi-replica tests and `backout bench --topology`.

The load balancer spreads TCP connections round-robin over the API processes, as a Kubernetes
Service (kube-proxy) spreads them over ready pods: a client's keep-alive connection stays on one
replica, a new connection goes to the next. A replica that refuses the connection (killed) is
skipped for `DOWN_S` and the connection goes to the next one; connections open to a replica when
it dies are cut, as they are when a pod dies, and the sender retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from devstack.process import ManagedProcess, ProcessStartError, free_port

DOWN_S = 2.0
_COPY_CHUNK = 65536


class LoadBalancer:
    """A round-robin TCP proxy on loopback, in a thread of its own (usable from sync and async code)."""

    def __init__(self, backends: list[tuple[str, int]], port: int | None = None) -> None:
        if not backends:
            raise ValueError("a load balancer needs at least one backend")
        self.backends = list(backends)
        self.port = port or free_port()
        # Connections handed to each backend (its index), and those refused by a dead one.
        self.connections: Counter[int] = Counter()
        self.refused: Counter[int] = Counter()
        self._next = 0
        self._down_until: dict[int, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoadBalancer:
        self._thread = threading.Thread(target=self._serve, name="backout-load-balancer", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)
        if self._startup_error is not None:
            raise ProcessStartError(f"load balancer on port {self.port}: {self._startup_error}")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
        self._thread = None

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
            )
        except OSError as exc:
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def _order(self) -> list[int]:
        """Backends to try for the next connection: round-robin, the ones seen dead lately last."""
        start = self._next
        self._next = (self._next + 1) % len(self.backends)
        ring = [(start + offset) % len(self.backends) for offset in range(len(self.backends))]
        now = time.monotonic()
        return [i for i in ring if self._down_until.get(i, 0) <= now] + [
            i for i in ring if self._down_until.get(i, 0) > now
        ]

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for index in self._order():
            host, port = self.backends[index]
            try:
                upstream = await asyncio.open_connection(host, port)
            except OSError:
                self.refused[index] += 1
                self._down_until[index] = time.monotonic() + DOWN_S
                continue
            self.connections[index] += 1
            self._down_until.pop(index, None)
            break
        if upstream is None:  # every replica down: the client sees a reset and retries
            client_writer.close()
            return
        backend_reader, backend_writer = upstream
        await asyncio.gather(
            _pipe(client_reader, backend_writer), _pipe(backend_reader, client_writer), return_exceptions=True
        )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_COPY_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class ReplicaSet:
    """`apis` x `backout api` behind a LoadBalancer and `workers` x `backout worker`, configured by
    `env` (BACKOUT_* variables naming the Temporal server, task queue, credentials, ...).

    Every process gets the same settings but its own state directory and log file (and, for an
    API, its own port): like the pods of one Helm release, which share no disk, so what they must
    agree on goes through Temporal or the shared store (BACKOUT_DATABASE_URL). `url` is the one
    address senders use."""

    def __init__(
        self,
        env: dict[str, str],
        log_dir: Path,
        apis: int = 2,
        workers: int = 3,
        startup_timeout_s: float = 120.0,
    ) -> None:
        if apis < 1 or workers < 1:
            raise ValueError("a replica set needs at least one API and one worker")
        self.env = dict(env)
        self.log_dir = log_dir
        self.api_ports = [free_port() for _ in range(apis)]
        self.worker_count = workers
        self.startup_timeout_s = startup_timeout_s
        self.api_processes: list[ManagedProcess] = []
        self.worker_processes: list[ManagedProcess] = []
        self.balancer: LoadBalancer | None = None

    @property
    def url(self) -> str:
        if self.balancer is None:
            raise ProcessStartError("the replica set is not started")
        return self.balancer.url

    @property
    def api_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.api_ports]

    def _process(self, name: str, command: str, extra: dict[str, str]) -> ManagedProcess:
        argv = [sys.executable, "-c", "from worker.cli import main; main()", command]
        state_dir = self.log_dir / name
        env = {**self.env, "PYTHONUNBUFFERED": "1", "BACKOUT_STATE_DIR": str(state_dir), **extra}
        return ManagedProcess(name, argv, self.log_dir / f"{name}.log", env=env)

    def start(self) -> ReplicaSet:
        try:
            for index in range(self.worker_count):
                worker = self._process(f"worker-{index}", "worker", {})
                worker.start()
                self.worker_processes.append(worker)
            for index, port in enumerate(self.api_ports):
                api = self._process(f"api-{index}", "api", {"BACKOUT_API_PORT": str(port)})
                api.start()
                self.api_processes.append(api)
            for api, url in zip(self.api_processes, self.api_urls, strict=True):
                wait_serving(api, url, self.startup_timeout_s)
            self.balancer = LoadBalancer([("127.0.0.1", port) for port in self.api_ports]).start()
        except BaseException:
            self.stop()
            raise
        return self

    def kill_api(self, index: int) -> None:
        self.api_processes[index].kill()

    def kill_worker(self, index: int) -> None:
        self.worker_processes[index].kill()

    def pids(self) -> dict[str, int | None]:
        return {p.name: p.pid for p in [*self.api_processes, *self.worker_processes]}

    def stop(self) -> None:
        if self.balancer is not None:
            self.balancer.stop()
        for process in [*self.api_processes, *self.worker_processes]:
            process.stop(timeout_s=20)

    def __enter__(self) -> ReplicaSet:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def wait_serving(api: ManagedProcess, url: str, timeout_s: float) -> None:
    """Until the API at `url` reaches Temporal and sees a worker polling its task queue."""
    api.wait_http_ready(f"{url}/healthz", timeout_s=timeout_s)
    deadline = time.monotonic() + timeout_s
    health: dict[str, str] = {}
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/healthz", timeout=5, trust_env=False).json()
        if health.get("temporal") == "ok" and health.get("worker") == "ok":
            return
        time.sleep(0.2)
    raise ProcessStartError(
        f"{api.name} at {url} not serving: temporal {health.get('temporal')}, worker {health.get('worker')}; "
        f"log:\n{api.log_tail()}"
    )
