"""Acceptance 1 and channel independence, on the real IncidentWorkflow and worker with paging pointed
at the local PagerDuty and Slack receivers: a whole incident pages once, records its rollback,
resolves and keeps one Slack thread; a channel that fails is retried, or noted through the other."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from temporalio.client import Client

from activities.incidents import IncidentBehaviour, open_or_join
from activities.paging.channels.pagerduty import dedup_key_for
from api.sources.alertmanager import AlertmanagerPayload
from config import Settings
from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.slack import SlackReceiver
from incidents.models import IncidentView, OpenIncidentRequest
from tests.fixtures.temporal import running_worker, timeline
from tests.paging.conftest import with_paging
from tests.paging.real_incident import RealStack
from tests.pipeline.payloads import alert, notification

pytestmark = [pytest.mark.temporal]


def _unexplained(service: str) -> OpenIncidentRequest:
    """A firing alert with no change behind it: no runbook acts, a human is paged."""
    starts = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    payload = AlertmanagerPayload.model_validate(
        notification([alert(service=service, starts_at=starts)], group=service)
    )
    return OpenIncidentRequest(key=payload.incident_key(), signal=payload.to_signal(datetime.now(UTC)))


async def _page_for_a_human(
    client: Client, backout_settings: Settings, paging_settings: Settings, service: str, **overrides: object
) -> IncidentView:
    settings = with_paging(backout_settings, paging_settings, **overrides)
    async with running_worker(client, settings):
        handle = await open_or_join(client, IncidentBehaviour(settings), _unexplained(service))
        view = IncidentView.model_validate(await asyncio.wait_for(handle.result(), timeout=120))
    assert view.state == "needs_human", timeline(view)
    return view


@pytest.mark.kube
@pytest.mark.slow
async def test_incident_end_to_end_pages_once_records_rollback_resolves_and_threads(
    stack: RealStack, pagerduty_receiver: PagerDutyReceiver, slack_receiver: SlackReceiver
) -> None:
    await stack.bad_deploy("chat")
    handle = await stack.open("chat", "PagingRollback")
    await stack.until(handle, "verifying", lambda v: any(a.action == "verify_rollout" for a in v.actions))
    await stack.resolve(handle, "chat", "PagingRollback")
    view = await stack.finished(handle)

    assert view.state == "recovered", timeline(view)
    key = dedup_key_for(handle.id)
    assert pagerduty_receiver.actions() == [("trigger", key), ("resolve", key)]
    assert len(pagerduty_receiver.change_events) == 1  # the rollback, recorded where it never pages
    assert "rolled back" in pagerduty_receiver.change_events[0]["payload"]["summary"]
    [head] = slack_receiver.heads()
    assert "[recovered]" in head.text
    replies = slack_receiver.thread(head.channel, head.ts)
    assert replies and len(slack_receiver.messages) == len(replies) + 1  # everything else in its thread
    trigger = pagerduty_receiver.events[0]
    assert "Likely cause (p=" in trigger["payload"]["custom_details"]["summary"]
    assert not [e for e in view.timeline if e.kind == "error" and e.step.startswith("notify")]


async def test_transient_failures_are_retried_and_delivered_once(
    temporal_client: Client,
    backout_settings: Settings,
    paging_settings: Settings,
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
) -> None:
    pagerduty_receiver.faults.push(503, 2)  # the whole first activity attempt fails, Temporal retries
    slack_receiver.faults.push(429, 1, {"Retry-After": "1"})
    view = await _page_for_a_human(temporal_client, backout_settings, paging_settings, "retry-svc")

    key = dedup_key_for(view.id)
    assert pagerduty_receiver.actions() == [("trigger", key), ("trigger", key)]  # opened, needs a human
    assert pagerduty_receiver.attempts == len(pagerduty_receiver.events) + 2
    assert len(slack_receiver.heads()) == 1
    assert not [e for e in view.timeline if e.kind == "error" and e.step == "notify"]


async def test_pagerduty_refusing_still_posts_to_slack_with_the_failure_noted(
    temporal_client: Client,
    backout_settings: Settings,
    paging_settings: Settings,
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
) -> None:
    pagerduty_receiver.faults.push(400, 1000)  # refused: not retried, so it fails at once
    view = await _page_for_a_human(temporal_client, backout_settings, paging_settings, "pd-refuses")

    assert pagerduty_receiver.events == []
    assert any(e.kind == "error" and "pagerduty opened" in e.message for e in view.timeline), timeline(view)
    [head] = slack_receiver.heads()
    assert "[needs human]" in head.text or "needs" in head.text
    notes = [m.text for m in slack_receiver.thread(head.channel, head.ts) if "NOT delivered" in m.text]
    assert notes and "PagerDuty opened was NOT delivered" in notes[0] and "400" in notes[0], notes


async def test_slack_down_still_pages_with_the_failure_noted(
    temporal_client: Client,
    backout_settings: Settings,
    paging_settings: Settings,
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
) -> None:
    view = await _page_for_a_human(
        temporal_client,
        backout_settings,
        paging_settings,
        "slack-down",
        slack_token=SecretStr("xoxb-revoked"),
    )

    key = dedup_key_for(view.id)
    assert slack_receiver.messages == {}
    triggers = [event for event in pagerduty_receiver.events if event["event_action"] == "trigger"]
    assert {event["dedup_key"] for event in triggers} == {key}
    noted = [str(event["payload"]["custom_details"].get("detail")) for event in triggers]
    assert any("Slack notification failed" in text and "invalid_auth" in text for text in noted), noted
    assert any(e.kind == "error" and "slack opened" in e.message for e in view.timeline), timeline(view)
