"""The real IncidentWorkflow and worker, with paging pointed at the local receivers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from temporalio.client import Client

from activities.incidents import IncidentBehaviour, open_or_join
from activities.paging.channels.pagerduty import dedup_key_for
from activities.paging.channels.slack import head_state
from api.sources.alertmanager import AlertmanagerPayload
from config import Settings
from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.slack import SlackReceiver
from incidents.models import IncidentView, OpenIncidentRequest
from tests.fixtures.temporal import running_worker
from tests.paging.conftest import make_report, with_paging
from tests.pipeline.payloads import alert, notification

pytestmark = [pytest.mark.temporal]


async def test_real_workflow_pages_once_and_keeps_one_slack_thread(
    temporal_client: Client,
    backout_settings: Settings,
    paging_settings: Settings,
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
) -> None:
    settings = with_paging(backout_settings, paging_settings)
    payload = AlertmanagerPayload.model_validate(notification([alert(service="rag-api")], group="rag-api"))
    key = payload.incident_key()
    request = OpenIncidentRequest(
        key=key,
        signal=payload.to_signal(datetime.now(UTC)),
    )
    async with running_worker(temporal_client, settings):
        handle = await open_or_join(temporal_client, IncidentBehaviour(settings), request)
        result = await asyncio.wait_for(handle.result(), timeout=90)
    view = IncidentView.model_validate(result)

    # Whatever path the pipeline took, paging keeps its invariants.
    dedup_key = dedup_key_for(handle.id)
    actions = pagerduty_receiver.actions()
    assert actions and actions[0] == ("trigger", dedup_key), actions
    assert {key for _, key in actions} == {dedup_key}
    resolved = ("resolve", dedup_key) in actions
    assert resolved == (view.state in ("recovered", "resolved_before_action", "shadowed")), (
        view.state,
        actions,
    )
    [head] = slack_receiver.heads()
    assert f"[{head_state(make_report(state=view.state))}]" in head.text, (view.state, head.text)
    replies = [m for m in slack_receiver.messages.values() if m is not head]
    assert replies and all(m.thread_ts == head.ts for m in replies)
    assert not [e for e in view.timeline if e.kind == "error" and e.step.startswith("notify")]
