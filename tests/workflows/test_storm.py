"""An alert storm that goes on after its incident was handed to a human: the rest of it joins that
incident until the cool-down ends, instead of closing it so the storm's next notification opens
(and pages for) another run.

The real IncidentWorkflow and runbook loader on a real Temporal server; stand-ins for the context,
attribution and paging activities (tests/workflows/test_hot_path.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.worker import Worker

from incidents.models import Alert, IncidentSignal, IncidentView
from tests.runbooks.incident_runs import incident_params, start_incident
from tests.workflows.test_hot_path import NAMESPACE, PAGE_ONLY, _patches, _replays, standins
from worker.sandbox import sandbox_runner
from worker.temporal_server import TemporalDevServer
from workflows.incident import NEEDS_HUMAN_HOLDS_PATCH, IncidentWorkflow

pytestmark = [pytest.mark.temporal, pytest.mark.timeout(120)]

COOLDOWN_S = 6.0

# Matches HotPath alerts only, nothing the storm sends: the incident goes to a human ("no runbook matched").
NO_MATCH = PAGE_ONLY


def _storm(service: str, *fingerprints: str) -> IncidentSignal:
    now = datetime.now(UTC)
    labels = {"alertname": "StormAlert", "severity": "warning", "service": service, "namespace": NAMESPACE}
    return IncidentSignal(
        source="alertmanager",
        received_at=now,
        alerts=[
            Alert(fingerprint=fp, status="firing", labels={**labels, "instance": fp}, starts_at=now)
            for fp in fingerprints
        ],
    )


async def _until(handle: WorkflowHandle[Any, IncidentView], says: str) -> IncidentView:
    for _ in range(600):
        view = await handle.query(IncidentWorkflow.view)
        if any(says in entry.message for entry in view.timeline):
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"the incident never said {says!r}")


async def test_a_storm_going_on_after_a_human_was_paged_joins_the_same_run(
    temporal_server: TemporalDevServer, tmp_path: Path
) -> None:
    runbooks, calls, client, queue = await standins(temporal_server, NO_MATCH, tmp_path, "storm")
    service = calls.change.service
    params = incident_params(NAMESPACE, service, runbooks, cooldown_s=COOLDOWN_S)
    async with Worker(
        client,
        task_queue=queue,
        workflows=[IncidentWorkflow],
        activities=calls.activities(),
        workflow_runner=sandbox_runner([IncidentWorkflow]),
    ):
        first = await start_incident(client, queue, params, _storm(service, "fp-1"))
        await _until(first, "no runbook matched")
        # The storm grows: a new alert of the group fires while the incident cools down.
        await start_incident(client, queue, params, _storm(service, "fp-1", "fp-2"))
        await _until(first, "a human is already paged")
        description = await first.describe()
        assert description.status == WorkflowExecutionStatus.RUNNING, "the incident closed on the re-fire"
        later = await start_incident(client, queue, params, _storm(service, "fp-1", "fp-2", "fp-3"))
        assert later.result_run_id == first.result_run_id, "the storm's next notification opened another run"
        view = await asyncio.wait_for(first.result(), timeout=60)
        history = await first.fetch_history()
    assert view.state == "needs_human"
    assert sorted(alert.fingerprint for alert in view.alerts) == ["fp-1", "fp-2", "fp-3"]
    assert view.closed_at is not None and (view.closed_at - view.opened_at).total_seconds() >= COOLDOWN_S
    # Paged once for the storm: the opening page and the hand-over, on each channel.
    assert sorted(calls.order.count(f"{ch}:needs_human") for ch in ("pagerduty", "slack")) == [1, 1]
    assert NEEDS_HUMAN_HOLDS_PATCH in _patches(history)
    await _replays(history)
