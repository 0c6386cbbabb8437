"""Open incidents in the background before a bench measures, so its figures show how the cost
grows with the work backout already holds (`--open-incidents N`).

Each background incident is one firing alert of its own service in its own namespace
(`backout-bench-<run>`), sent through the API like any other; the bench waits until every one
is listed and has settled (handed to a human, in its cool-down) before it measures, and counts
how many are still open when it is done.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import httpx
from pydantic import BaseModel

from devstack.bench.payloads import LoadShape, bench_namespace, plan_notifications
from devstack.bench.runner import BenchError, RetryPolicy, send_all

# Memo states of an incident still working on its first response (workflows/incident.py).
WORKING_STATES = frozenset({"open", "collecting", "attributing", "deciding", "remediating", "verifying"})
# GET /v1/incidents lists at most this many (the newest first).
LIST_LIMIT = 1000


class OpenIncidents(BaseModel):
    requested: int
    namespace: str
    open_at_start: int
    open_at_end: int | None = None
    opening_s: float


def background_run_id() -> str:
    return f"open-{uuid.uuid4().hex[:8]}"


async def _running(client: httpx.AsyncClient, namespace: str) -> tuple[int, int]:
    """(running incidents of the namespace, those of them still working on their response)."""
    response = await client.get("/v1/incidents", params={"limit": LIST_LIMIT})
    if response.status_code != 200:
        raise BenchError(f"GET /v1/incidents answered HTTP {response.status_code}: {response.text[:300]}")
    running = [
        item
        for item in response.json().get("incidents", [])
        if item.get("namespace") == namespace and item.get("status") == "RUNNING"
    ]
    return len(running), sum(1 for item in running if item.get("state") in WORKING_STATES)


async def open_background(
    client: httpx.AsyncClient,
    token: str | None,
    count: int,
    run_id: str,
    concurrency: int,
    retry: RetryPolicy,
    settle_timeout_s: float = 900.0,
) -> OpenIncidents:
    """Open `count` incidents and wait until all are running and none is still working."""
    if count > LIST_LIMIT:
        raise BenchError(f"--open-incidents {count}: at most {LIST_LIMIT} (what one listing shows)")
    started = time.perf_counter()
    shape = LoadShape(groups=count, alerts_per_group=1, batches=1, replicas=1)
    plan = plan_notifications(shape, run_id, datetime.now(UTC))
    sent = await send_all(client, plan, token, concurrency, retry)
    if sent.lost:
        first = sent.lost[0]
        raise BenchError(
            f"{len(sent.lost)} background incidents could not be opened (first: HTTP {first.status}: "
            f"{first.error})"
        )
    namespace = bench_namespace(run_id)
    deadline = time.perf_counter() + settle_timeout_s
    while True:
        running, working = await _running(client, namespace)
        if running >= count and working == 0:
            break
        if time.perf_counter() > deadline:
            raise BenchError(
                f"{count} background incidents: {running} running, {working} still working after "
                f"{settle_timeout_s:.0f}s"
            )
        await asyncio.sleep(2.0)
    return OpenIncidents(
        requested=count,
        namespace=namespace,
        open_at_start=running,
        opening_s=round(time.perf_counter() - started, 1),
    )


async def still_open(client: httpx.AsyncClient, opened: OpenIncidents) -> OpenIncidents:
    """`opened` with how many of its incidents are still running now."""
    running, _ = await _running(client, opened.namespace)
    return opened.model_copy(update={"open_at_end": running})
