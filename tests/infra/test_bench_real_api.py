"""The benches against a real `backout up` (embedded Temporal dev server, worker, API), small sizes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.bench.benches import IngestResult, StormResult, Target, run_ingest, run_storm
from devstack.bench.stack import SpawnedStack

pytestmark = [pytest.mark.temporal, pytest.mark.slow]


@pytest.fixture(scope="module")
def backout_stack() -> Iterator[SpawnedStack]:
    with SpawnedStack() as stack:
        yield stack


async def test_ingest_against_real_api(backout_stack: SpawnedStack) -> None:
    target = _target(backout_stack)
    result = await run_ingest(target, notifications=48, groups=6)
    assert result.ok, result.problems
    assert (result.incidents, result.lost) == (6, 0)
    _measured_beside_its_floor(result)


async def test_storm_against_real_api_keeps_every_alert_in_one_incident_per_group(
    backout_stack: SpawnedStack,
) -> None:
    target = _target(backout_stack)
    result = await run_storm(target, alerts=120, groups=6, batches=3)
    assert result.ok, result.problems
    assert result.incidents_opened == 6
    assert (result.alerts_held, result.alerts_lost, result.notifications_lost) == (120, 0, 0)
    assert result.duplicates_absorbed == result.alert_deliveries - 120
    _measured_beside_its_floor(result)


def _target(stack: SpawnedStack) -> Target:
    """The stack's API, and its Temporal server for the floor's bare client."""
    return Target(
        url=stack.url,
        token=stack.token,
        operator_token=stack.operator_token,
        concurrency=8,
        list_wait_s=30,
        temporal_address=stack.temporal_address,
    )


def _measured_beside_its_floor(result: IngestResult | StormResult) -> None:
    floor = result.floor
    assert floor is not None and floor.calls_per_s and floor.p99_ms and not floor.errors, floor
    assert result.throughput_ratio is not None and result.throughput_ratio > 0
    assert result.p99_ratio is not None and result.p99_ratio > 0


def test_the_worker_runs_nicer_than_the_api(backout_stack: SpawnedStack) -> None:
    """Under `backout up` incident work yields the CPU to webhook ingestion (worker_niceness, default 5)."""
    assert backout_stack.process is not None and backout_stack.process.pid is not None
    api_pid = backout_stack.process.pid
    children = Path(f"/proc/{api_pid}/task/{api_pid}/children").read_text().split()
    workers = [
        int(pid) for pid in children if b"worker.cli\x00worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(workers) == 1, children
    assert os.getpriority(os.PRIO_PROCESS, workers[0]) == os.getpriority(os.PRIO_PROCESS, api_pid) + 5
