"""Durability: a worker killed mid-incident (SIGKILL) and a new one finishing it (replay of committed
histories: test_replay.py)."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import pytest
from temporalio.client import Client

from activities.incidents import IncidentBehaviour, open_or_join
from config import Settings
from incidents.models import IncidentView
from tests.fixtures.temporal import worker_subprocess
from tests.pipeline.payloads import open_request

pytestmark = pytest.mark.temporal


async def _view(client: Client, incident_id: str) -> IncidentView:
    return await client.get_workflow_handle(incident_id).query("view", result_type=IncidentView)


async def test_worker_killed_between_steps_resumes_without_repeating_a_step(
    temporal_client: Client, backout_settings: Settings
) -> None:
    settings = backout_settings.model_copy(update={"incident_settle_s": 4.0})
    first = worker_subprocess(settings)
    try:
        incident_id = (
            await open_or_join(temporal_client, IncidentBehaviour(settings), open_request("restart-svc"))
        ).id
        for _ in range(200):  # the first worker has run the opening step and now sleeps in settle
            view = await _view(temporal_client, incident_id)
            if any(entry.step == "open" for entry in view.timeline):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the first worker never picked the incident up")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    second = worker_subprocess(settings)
    try:
        result = await asyncio.wait_for(
            temporal_client.get_workflow_handle(incident_id).result(), timeout=120
        )
    finally:
        second.terminate()
        second.wait(timeout=30)
    final = IncidentView.model_validate(result)
    assert final.closed_at is not None
    steps = Counter((entry.kind, entry.step) for entry in final.timeline if entry.kind == "step")
    assert steps, "timeline recorded no steps"
    assert all(count == 1 for count in steps.values()), steps
    order = [e.step for e in final.timeline if e.kind == "step"]
    wanted = ["open", "collecting", "attributing", "deciding", "close"]
    assert [step for step in order if step in wanted] == wanted, order
