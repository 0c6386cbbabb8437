"""Acceptance 2 and approvals: Slack-signed button clicks against the endpoint and a real workflow."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from activities.paging.channels.pagerduty import dedup_key_for
from api import slack as slack_api
from api.approvers import judge
from api.slack import router
from config import Settings
from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.slack import SlackMessage, SlackReceiver
from incidents.models import ApprovalRequest, ApprovalScope
from tests.paging.conftest import APPROVER, DETECTED, OUTSIDER, SIGNING_SECRET, make_report, rollback_record
from tests.paging.harness import button_payload, paging_worker, start_incident, wait_for_approval_message
from tests.paging.incident_workflow import PagingTestIncident, Scenario, ScenarioResult

pytestmark = [pytest.mark.temporal, pytest.mark.asyncio(loop_scope="session")]


def signed(body: str, secret: str = SIGNING_SECRET, at: int | None = None) -> dict[str, str]:
    timestamp = str(int(time.time()) if at is None else at)
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def click_body(message: SlackMessage, user: str, approve: bool = True) -> str:
    return urlencode({"payload": button_payload(message, user, approve)})


class Pending:
    def __init__(
        self,
        handle: WorkflowHandle[PagingTestIncident, ScenarioResult],
        message: SlackMessage,
        http: httpx.AsyncClient,
    ) -> None:
        self.handle = handle
        self.message = message
        self.http = http

    async def post(self, body: str, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post("/v1/slack/interactions", content=body, headers=headers)

    async def decisions(self) -> int:
        return len(await self.handle.query(PagingTestIncident.decisions))


@pytest.fixture
async def pending(
    request: pytest.FixtureRequest,
    paging_client: Client,
    paging_settings: Settings,
    slack_receiver: SlackReceiver,
    pagerduty_receiver: PagerDutyReceiver,
) -> AsyncIterator[Pending]:
    """An incident waiting for approval in Slack, and the API app that receives the clicks."""
    app = FastAPI()
    app.include_router(router)
    app.state.settings = paging_settings
    app.state.temporal_client = paging_client
    incident_id = f"incident-approval-{request.node.name[-40:]}-{time.monotonic_ns() % 10**6}"
    scenario = Scenario(
        report=make_report(incident_id), approval_request_id="req-42", rollback=rollback_record()
    )
    async with paging_worker(paging_client, paging_settings) as task_queue:
        handle = await start_incident(paging_client, task_queue, scenario)
        message = await wait_for_approval_message(slack_receiver)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://backout.test") as http:
            yield Pending(handle, message, http)
        with contextlib.suppress(RPCError):  # most tests let it finish
            await handle.terminate("test over")


async def test_forged_signature_gets_401_and_changes_nothing(pending: Pending) -> None:
    body = click_body(pending.message, APPROVER)
    response = await pending.post(body, signed(body, secret="not-the-signing-secret"))
    assert response.status_code == 401
    tampered = body.replace("backout_approve", "backout_reject")
    headers = signed(body)
    assert (await pending.post(tampered, headers)).status_code == 401
    assert (
        await pending.post(body, {"Content-Type": "application/x-www-form-urlencoded"})
    ).status_code == 401
    assert await pending.decisions() == 0


async def test_stale_timestamp_gets_401_and_changes_nothing(pending: Pending) -> None:
    body = click_body(pending.message, APPROVER)
    stale = await pending.post(body, signed(body, at=int(time.time()) - 301))
    future = await pending.post(body, signed(body, at=int(time.time()) + 301))
    assert (stale.status_code, future.status_code) == (401, 401)
    assert "stale" in stale.json()["error"]
    assert await pending.decisions() == 0


async def test_approval_resumes_the_workflow_exactly_once_and_replays_are_rejected(
    pending: Pending, pagerduty_receiver: PagerDutyReceiver, slack_receiver: SlackReceiver
) -> None:
    body = click_body(pending.message, APPROVER)
    headers = signed(body)
    started = time.monotonic()
    first = await pending.post(body, headers)
    answered_in = time.monotonic() - started
    assert first.status_code == 200 and first.json()["ok"] is True, first.text
    assert f"Approved by <@{APPROVER}>" in first.json()["text"]
    print(f"approval answered in {answered_in:.3f}s")

    replay = await pending.post(body, headers)
    assert replay.status_code == 401 and "replayed" in replay.json()["error"]

    again = click_body(pending.message, APPROVER)
    second = await pending.post(again, signed(again))
    assert second.status_code == 200 and second.json()["ok"] is False
    assert "Nothing changed" in second.json()["text"]

    result = await asyncio.wait_for(pending.handle.result(), timeout=30)
    assert [(d.user, d.approve, d.source) for d in result.decisions] == [(APPROVER, True, "slack")]
    key = dedup_key_for(pending.handle.id)
    assert pagerduty_receiver.actions() == [("trigger", key), ("acknowledge", key), ("resolve", key)]
    assert len(pagerduty_receiver.change_events) == 1
    await asyncio.sleep(0.2)  # the user is told in a background task after the answer
    assert any(e["user"] == APPROVER and "Approved" in e["text"] for e in slack_receiver.ephemeral)
    edited = slack_receiver.messages[(pending.message.channel, pending.message.ts)]
    assert not any(block["type"] == "actions" for block in edited.blocks)  # buttons gone once decided


async def test_user_who_is_not_an_approver_changes_nothing(
    pending: Pending, slack_receiver: SlackReceiver
) -> None:
    body = click_body(pending.message, OUTSIDER)
    response = await pending.post(body, signed(body))
    assert response.status_code == 200 and response.json()["ok"] is False
    assert "is not an approver for ml-platform" in response.json()["text"]
    assert await pending.decisions() == 0
    await asyncio.sleep(0.2)
    assert any(e["user"] == OUTSIDER and "Not allowed" in e["text"] for e in slack_receiver.ephemeral)


async def test_unknown_request_is_refused_by_the_workflow(pending: Pending) -> None:
    body = click_body(pending.message, APPROVER).replace("req-42", "req-99")
    response = await pending.post(body, signed(body))
    assert response.status_code == 200 and response.json()["ok"] is False
    assert "unknown approval request req-99" in response.json()["text"]
    assert await pending.decisions() == 0


async def test_reject_hands_the_incident_to_a_human(
    pending: Pending, pagerduty_receiver: PagerDutyReceiver
) -> None:
    body = click_body(pending.message, APPROVER, approve=False)
    response = await pending.post(body, signed(body))
    assert response.status_code == 200 and "Rejected by" in response.json()["text"]
    result = await asyncio.wait_for(pending.handle.result(), timeout=30)
    assert [d.approve for d in result.decisions] == [False]
    assert [action for action, _ in pagerduty_receiver.actions()] == ["trigger", "trigger"]
    assert pagerduty_receiver.events[1]["payload"]["severity"] == "critical"


class _BrokenGateway:
    async def client(self) -> Client:
        raise RuntimeError("temporal is unreachable: connection refused")


def _standalone_app(settings: Settings) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    app.state.settings = settings
    app.state.gateway = _BrokenGateway()
    return app


def _fake_click(request_id: str = "req-1") -> str:
    value = f'{{"w":"incident-x","r":"{request_id}","t":"ml-platform","a":true}}'
    payload = {
        "type": "block_actions",
        "user": {"id": APPROVER},
        "channel": {"id": "C1"},
        "actions": [{"action_id": "backout_approve", "value": value}],
    }
    return urlencode({"payload": json.dumps(payload)})


async def test_unreachable_temporal_is_reported_not_raised(paging_settings: Settings) -> None:
    transport = httpx.ASGITransport(app=_standalone_app(paging_settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://backout.test") as http:
        body = _fake_click()
        response = await http.post("/v1/slack/interactions", content=body, headers=signed(body))
    assert response.status_code == 200 and response.json()["ok"] is False
    assert "cannot reach Temporal" in response.json()["text"]


async def test_without_a_signing_secret_every_interaction_is_refused(paging_settings: Settings) -> None:
    settings = paging_settings.model_copy(update={"slack_signing_secret": None})
    transport = httpx.ASGITransport(app=_standalone_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://backout.test") as http:
        body = _fake_click()
        response = await http.post("/v1/slack/interactions", content=body, headers=signed(body))
    assert response.status_code == 401


async def test_malformed_interactions_are_refused_after_the_signature_check(
    pending: Pending,
) -> None:
    for body, expected in [
        ("payload=not-json", "payload is not JSON"),
        (urlencode({"payload": '{"type":"view_submission"}'}), "not a block_actions"),
        (
            urlencode({"payload": '{"type":"block_actions","actions":"x","user":7}'}),
            "not a Slack interaction",
        ),
        (_fake_click().replace("backout_approve", "backout_reject"), "does not match"),
    ]:
        response = await pending.post(body, signed(body))
        assert response.status_code == 400 and expected in response.json()["detail"], response.text
    assert await pending.decisions() == 0


def _scope(team: str | None, service: str = "rag-api", namespace: str = "prod") -> ApprovalScope:
    request = ApprovalRequest(request_id="r", expires_at=DETECTED + timedelta(hours=1))
    return ApprovalScope(approval=request, service=service, namespace=namespace, team=team)


async def test_team_falls_back_to_the_service_owner(paging_settings: Settings) -> None:
    by_service = _scope(team=None)
    assert judge(paging_settings, by_service, APPROVER).refusal is None
    assert "not an approver for ml-platform" in str(judge(paging_settings, by_service, OUTSIDER).refusal)
    unowned = _scope(team=None, service="nobody", namespace="dev")
    assert "nobody may approve" in str(judge(paging_settings, unowned, APPROVER).refusal)
    no_file = paging_settings.model_copy(update={"ownership_file": None})
    assert "nobody may approve" in str(judge(no_file, by_service, APPROVER).refusal)


async def test_slow_decision_is_answered_at_once_and_reported_later(
    pending: Pending, slack_receiver: SlackReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slack_api, "ANSWER_BUDGET_S", 0.0)  # as if the update took longer than Slack waits
    body = click_body(pending.message, APPROVER)
    response = await pending.post(body, signed(body))
    assert response.status_code == 200 and "still being applied" in response.json()["text"]
    result = await asyncio.wait_for(pending.handle.result(), timeout=30)
    assert len(result.decisions) == 1
    for _ in range(100):
        if any("Approved by" in e["text"] for e in slack_receiver.ephemeral):
            break
        await asyncio.sleep(0.05)
    assert any(e["user"] == APPROVER and "Approved by" in e["text"] for e in slack_receiver.ephemeral)
