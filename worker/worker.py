"""The worker process: runs incident workflows and their activities."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes.client import VersionApi
from prometheus_client import Histogram, start_http_server
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from activities.kube.client import kube_configured, shared_apis
from activities.kube.history import run_history_recorder
from activities.kube.parallel import at_once
from config import Settings
from worker import registry
from worker.sandbox import sandbox_runner

log = logging.getLogger(__name__)

STEP_LATENCY = Histogram(
    "backout_step_duration_seconds",
    "Duration of each incident step (activity), by step",
    ["step", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


class _StepTimer(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await self.next.execute_activity(input)
        except BaseException:
            outcome = "error"
            raise
        finally:
            STEP_LATENCY.labels(activity.info().activity_type, outcome).observe(time.perf_counter() - started)


class StepMetricsInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _StepTimer(next)


def build_worker(client: Client, settings: Settings, executor: ThreadPoolExecutor) -> Worker:
    workflows = registry.workflows()
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=workflows,
        workflow_runner=sandbox_runner(workflows),
        activities=registry.activities(settings),
        activity_executor=executor,
        max_concurrent_activities=32,
        interceptors=[StepMetricsInterceptor()],
    )


# Connections the warm-up opens to the apiserver: as many as an incident's context reads at once.
WARM_CONNECTIONS = 4
WARM_UP_TIMEOUT_S = 10.0


def warm_up(settings: Settings) -> None:
    """Build the shared Kubernetes client and fill its pool with connections, so the first incident
    after a start does not pay for them on its way to the rollback (several hundred ms on a loaded
    host: the kubeconfig, the client's first use, a TLS handshake per connection). Best effort: a
    cluster that cannot be reached now is the first incident's business, as before."""
    if not kube_configured(settings):
        return
    try:
        version = VersionApi(shared_apis(settings).api_client)
        at_once(*(version.get_code for _ in range(WARM_CONNECTIONS)))
    except Exception as exc:
        log.warning("kubernetes client warm-up: %s: %s", type(exc).__name__, exc)


def _start_history_recorder(settings: Settings) -> tuple[threading.Thread, threading.Event] | None:
    """Kubernetes keeps no ConfigMap/Secret history: record every version while the worker runs."""
    if not kube_configured(settings):
        return None
    stop = threading.Event()
    thread = threading.Thread(
        target=run_history_recorder, args=(settings, stop), name="backout-history", daemon=True
    )
    thread.start()
    return thread, stop


async def run_worker(client: Client, settings: Settings, stop: asyncio.Event) -> None:
    """Run until `stop` is set, then shut down gracefully (in-flight activities finish)."""
    if settings.worker_metrics_port is not None:
        # Serves /metrics (and, for a pod's probes, any path such as /healthz) while the worker runs.
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
    recorder = _start_history_recorder(settings)
    try:
        try:
            await asyncio.wait_for(asyncio.to_thread(warm_up, settings), timeout=WARM_UP_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "kubernetes client warm-up still running after %ss; starting anyway", WARM_UP_TIMEOUT_S
            )
        with ThreadPoolExecutor(max_workers=32, thread_name_prefix="backout-activity") as executor:
            worker = build_worker(client, settings, executor)
            async with worker:
                await stop.wait()
    finally:
        if recorder is not None:
            recorder[1].set()
            await asyncio.to_thread(recorder[0].join, 10)
