"""The worker process: runs incident workflows and their activities."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client import Histogram
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from worker import registry
from worker.settings import Settings, use_settings

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
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=registry.workflows(),
        activities=registry.activities(),
        activity_executor=executor,
        max_concurrent_activities=32,
        interceptors=[StepMetricsInterceptor()],
    )


async def run_worker(client: Client, settings: Settings, stop: asyncio.Event) -> None:
    """Run until `stop` is set, then shut down gracefully (in-flight activities finish)."""
    use_settings(settings)
    registry.configure(settings)
    with ThreadPoolExecutor(max_workers=32, thread_name_prefix="backout-activity") as executor:
        worker = build_worker(client, settings, executor)
        async with worker:
            await stop.wait()
