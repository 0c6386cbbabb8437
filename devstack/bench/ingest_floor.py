"""The ingest floor: the same notifications as bare signal-with-start calls from a plain Temporal
client to the same server, with the same concurrency, in the same run.

It is what putting the load into Temporal costs with nothing else around it: no HTTP, no
validation, no dedupe, no worker (nobody polls its task queue, so the server only records the
starts and signals). One workflow per alert group, every notification (HA twins included) one
call, its body the signal. The floor's workflows are terminated when it is done.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta

from pydantic import BaseModel
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from devstack.bench.payloads import Notification
from devstack.bench.runner import BenchError, drain, percentile_ms

FLOOR_WORKFLOW = "BackoutBenchIngestFloor"
FLOOR_SIGNAL = "add_signal"


class IngestFloor(BaseModel):
    """The bare client's figures for the same notifications."""

    temporal_address: str
    calls: int
    concurrency: int
    wall_s: float
    calls_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    first_error: str | None = None


async def measure_floor(
    temporal_address: str,
    temporal_namespace: str,
    plan: Sequence[Notification],
    concurrency: int,
    run_id: str,
) -> IngestFloor:
    """Signal-with-start every notification of `plan` as a plain client would."""
    try:
        client = await Client.connect(temporal_address, namespace=temporal_namespace)
    except Exception as exc:
        raise BenchError(
            f"the ingest floor cannot reach Temporal at {temporal_address} ({exc}): pass the "
            "--temporal-address backout uses, or --no-floor"
        ) from exc
    queue = f"backout-bench-floor-{run_id}"  # no worker polls it

    def workflow_id(group: int) -> str:
        return f"{queue}-g{group:05d}"

    async def call(notification: Notification, workflow: str) -> None:
        await client.start_workflow(
            FLOOR_WORKFLOW,
            notification.body["groupKey"],
            id=workflow,
            task_queue=queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=FLOOR_SIGNAL,
            start_signal_args=[notification.body],
            execution_timeout=timedelta(minutes=30),  # a bound if the termination below fails
        )

    if plan:  # the connection warm, as backout's is: one call, not timed
        await call(plan[0], f"{queue}-warm-up")
    latencies: list[float] = []
    errors: list[str] = []

    async def send(index: int) -> None:
        notification = plan[index]
        started = time.perf_counter()
        try:
            await call(notification, workflow_id(notification.group))
        except RPCError as exc:
            errors.append(f"{exc.status.name}: {exc.message}"[:300])
            return
        latencies.append(time.perf_counter() - started)

    wall = await drain(len(plan), concurrency, send)
    opened = [f"{queue}-warm-up", *sorted({workflow_id(n.group) for n in plan})]
    await _terminate(client, opened, concurrency)
    return IngestFloor(
        temporal_address=temporal_address,
        calls=len(plan),
        concurrency=concurrency,
        wall_s=round(wall, 3),
        calls_per_s=round(len(latencies) / wall, 1) if wall > 0 else 0.0,
        p50_ms=percentile_ms(latencies, 0.5),
        p99_ms=percentile_ms(latencies, 0.99),
        errors=len(errors),
        first_error=errors[0] if errors else None,
    )


async def _terminate(client: Client, workflow_ids: list[str], concurrency: int) -> None:
    async def stop(index: int) -> None:
        try:
            await client.get_workflow_handle(workflow_ids[index]).terminate("backout bench floor done")
        except RPCError:
            pass  # already closed (timed out): nothing left to stop

    await drain(len(workflow_ids), concurrency, stop)
