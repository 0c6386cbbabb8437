"""The generic JSON webhook channel against a local receiver that checks its contract (shape,
HMAC signature, freshness, one delivery id per event), directly and from the real workflow."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.incidents import IncidentBehaviour, open_or_join
from activities.paging.channels import enabled_channels
from activities.paging.channels.webhook import WebhookChannel
from config import Settings
from devstack.receivers.webhook import WebhookReceiver
from incidents.models import IncidentView, NotifyRequest
from tests.fixtures.temporal import running_worker
from tests.paging.conftest import make_report, rollback_record
from tests.pipeline.payloads import open_request

SECRET = "webhook-test-secret-0123456789"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(secret=SECRET).start()
    try:
        yield server
    finally:
        server.stop()


def _settings(receiver: WebhookReceiver, tmp_path: Path, secret: str = SECRET) -> Settings:
    return Settings(state_dir=tmp_path, webhook_url=receiver.hook_url, webhook_secret=SecretStr(secret))


def test_the_channel_is_called_only_when_configured(receiver: WebhookReceiver, tmp_path: Path) -> None:
    assert "webhook" not in enabled_channels(Settings(state_dir=tmp_path))
    assert enabled_channels(_settings(receiver, tmp_path))[-1] == "webhook"
    bare = WebhookChannel(Settings(state_dir=tmp_path)).send(
        NotifyRequest(event="opened", report=make_report())
    )
    assert bare.outcome == "Inconclusive" and receiver.attempts == 0


def test_a_signed_event_carries_the_incident_in_the_documented_shape(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    report = make_report(state="remediating", actions=[rollback_record()])
    request = NotifyRequest(event="rollback_performed", report=report, detail="rolled back to revision 3")
    result = WebhookChannel(_settings(receiver, tmp_path)).send(request)
    assert result.outcome == "Successful" and result.channel == "webhook"
    [event] = receiver.events
    assert (event.event, event.incident_id, event.state) == (
        "rollback_performed",
        report.incident_id,
        "remediating",
    )
    assert [c.change_id for c in event.culprits] == ["chg-17", "chg-12"] and event.culprits[
        0
    ].probability == 0.82
    assert event.actions == ["rollback deployment/retriever: Successful (rolled back to revision 3)"]
    assert event.summary == report.summary and event.detail == "rolled back to revision 3"
    assert receiver.headers[0]["x-backout-event"] == "rollback_performed"


def test_a_retried_event_is_one_delivery(receiver: WebhookReceiver, tmp_path: Path) -> None:
    channel = WebhookChannel(_settings(receiver, tmp_path))
    request = NotifyRequest(event="opened", report=make_report())
    channel.send(request)
    channel.send(request)
    assert len(receiver.events) == 1 and receiver.retries == 1


def test_a_wrong_secret_is_rejected_and_not_retried(receiver: WebhookReceiver, tmp_path: Path) -> None:
    channel = WebhookChannel(_settings(receiver, tmp_path, secret="not-the-secret"))
    with pytest.raises(ApplicationError, match="HTTP 401") as caught:
        channel.send(NotifyRequest(event="opened", report=make_report()))
    assert caught.value.non_retryable and receiver.events == []
    assert receiver.rejected == [(401, "invalid X-Backout-Signature")]


def test_a_receiver_that_is_down_is_retried(receiver: WebhookReceiver, tmp_path: Path) -> None:
    receiver.faults.push(503)
    with pytest.raises(ApplicationError, match="HTTP 503") as caught:
        WebhookChannel(_settings(receiver, tmp_path)).send(
            NotifyRequest(event="opened", report=make_report())
        )
    assert not caught.value.non_retryable


@pytest.mark.temporal
async def test_the_incident_workflow_calls_the_webhook_with_the_other_channels(
    temporal_client: Client, backout_settings: Settings, receiver: WebhookReceiver
) -> None:
    settings = backout_settings.model_copy(
        update={"webhook_url": receiver.hook_url, "webhook_secret": SecretStr(SECRET)}
    )
    handle = await open_or_join(
        temporal_client, IncidentBehaviour(settings), open_request("hooked", name="MysteryAlert")
    )
    async with running_worker(temporal_client, settings):
        view = IncidentView.model_validate(await asyncio.wait_for(handle.result(), timeout=120))
    assert view.state == "needs_human"
    assert [event.event for event in receiver.events] == ["opened", "needs_human"]
    assert {event.incident_id for event in receiver.events} == {handle.id}
    delivered = [(record.event, record.message) for record in view.deliveries if record.channel == "webhook"]
    assert delivered == [
        ("opened", "opened posted (HTTP 202)"),
        ("needs_human", "needs_human posted (HTTP 202)"),
    ]
    # PagerDuty and Slack are unset here: still called, they say so, and the webhook does not wait on them.
    assert any(
        record.channel == "pagerduty" and record.outcome == "Inconclusive" and not record.sent
        for record in view.deliveries
    )
