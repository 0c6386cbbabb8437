"""Acceptance 1 and channel independence: a whole incident against the receivers on real Temporal."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from temporalio.client import Client

from activities.paging.channels.pagerduty import dedup_key_for
from config import Settings
from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.slack import SlackReceiver
from tests.paging.conftest import make_report, rollback_record
from tests.paging.harness import run_incident
from tests.paging.incident_workflow import Scenario

pytestmark = [pytest.mark.temporal, pytest.mark.asyncio(loop_scope="session")]


async def test_incident_end_to_end_pages_once_records_rollback_resolves_and_threads(
    paging_client: Client,
    paging_settings: Settings,
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
) -> None:
    report = make_report("incident-e2e-1")
    result = await run_incident(
        paging_client, paging_settings, Scenario(report=report, rollback=rollback_record())
    )

    key = dedup_key_for("incident-e2e-1")
    assert pagerduty_receiver.actions() == [("trigger", key), ("resolve", key)]
    assert len(pagerduty_receiver.change_events) == 1
    assert all(outcome.errors == [] for outcome in result.outcomes)

    [head] = slack_receiver.heads()
    assert result.thread is not None and (head.channel, head.ts) == (result.thread.channel, result.thread.ts)
    assert "[recovered]" in head.text
    replies = slack_receiver.thread(head.channel, head.ts)
    assert len(replies) == 2 and len(slack_receiver.messages) == 3
    trigger = pagerduty_receiver.events[0]
    assert "Likely cause (p=0.82)" in trigger["payload"]["custom_details"]["summary"]


async def test_transient_failures_are_retried_and_delivered_once(
    paging_client: Client,
    paging_settings: Settings,
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
) -> None:
    pagerduty_receiver.faults.push(503, 2)  # the whole first activity attempt fails, Temporal retries
    slack_receiver.faults.push(429, 1, {"Retry-After": "1"})
    result = await run_incident(
        paging_client, paging_settings, Scenario(report=make_report("incident-e2e-2"))
    )

    key = dedup_key_for("incident-e2e-2")
    assert pagerduty_receiver.actions() == [("trigger", key), ("resolve", key)]
    assert pagerduty_receiver.attempts == 4
    assert len(slack_receiver.heads()) == 1
    assert all(outcome.errors == [] for outcome in result.outcomes)


async def test_pagerduty_down_still_posts_to_slack_with_the_failure_noted(
    paging_client: Client,
    paging_settings: Settings,
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
) -> None:
    pagerduty_receiver.faults.push(503, 1000)
    result = await run_incident(
        paging_client, paging_settings, Scenario(report=make_report("incident-e2e-3"))
    )

    assert pagerduty_receiver.events == []
    assert any("pagerduty opened" in error for error in result.outcomes[0].errors)
    [head] = slack_receiver.heads()
    assert "[recovered]" in head.text
    notes = [m.text for m in slack_receiver.thread(head.channel, head.ts) if "NOT delivered" in m.text]
    assert len(notes) == 2 and "PagerDuty opened was NOT delivered" in notes[0] and "503" in notes[0]


async def test_slack_down_still_pages_with_the_failure_noted(
    paging_client: Client,
    paging_settings: Settings,
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
) -> None:
    settings = paging_settings.model_copy(update={"slack_token": SecretStr("xoxb-revoked")})
    result = await run_incident(paging_client, settings, Scenario(report=make_report("incident-e2e-4")))

    key = dedup_key_for("incident-e2e-4")
    assert slack_receiver.messages == {}
    assert pagerduty_receiver.actions() == [("trigger", key), ("trigger", key), ("resolve", key)]
    noted = pagerduty_receiver.events[1]["payload"]["custom_details"]["detail"]
    assert "Slack notification failed" in noted and "invalid_auth" in noted
    assert any("slack opened" in error for error in result.outcomes[0].errors)
