"""Slack-signed button clicks to the real API's Slack route, deciding for the real IncidentWorkflow.

The incident is real (worker, Temporal, the local cluster with the culprit Deployment, a runbook that
asks for approval before rolling back); the API is `create_app` in this process so one test can
shorten its answer budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from activities.paging.channels.pagerduty import dedup_key_for
from api import slack as slack_api
from api.app import create_app
from api.approvers import judge
from api.slack import router
from config import Settings
from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.slack import SlackMessage, SlackReceiver
from incidents.models import ApprovalRequest, ApprovalScope, IncidentView
from tests.fixtures.temporal import timeline
from tests.paging.conftest import APPROVER, DETECTED, OUTSIDER
from tests.paging.real_incident import (
    RealStack,
    click_body,
    signed,
)

pytestmark = [pytest.mark.temporal]


class Pending:
    """A real incident waiting for approval, its Slack message, and the API that gets the clicks."""

    def __init__(
        self, stack: RealStack, handle: WorkflowHandle[Any, IncidentView], request: ApprovalRequest,
        message: SlackMessage, http: httpx.AsyncClient,
    ) -> None:  # fmt: skip
        self.stack = stack
        self.handle = handle
        self.request = request
        self.message = message
        self.http = http

    async def post(self, body: str, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post("/v1/slack/interactions", content=body, headers=headers)

    async def decisions(self) -> list[str]:
        """What the workflow recorded as decided ("approved by ...", "rejected by ...")."""
        view = await self.handle.query("view", result_type=IncidentView)
        return [
            entry.message
            for entry in view.timeline
            if entry.step == "approval" and entry.message.startswith(("approved by", "rejected by"))
        ]

    async def finish_recovered(self) -> IncidentView:
        """After an approval: the rollback rolls out, the alert resolves, the incident recovers."""
        await self.stack.until(
            self.handle, "verifying", lambda v: any(a.action == "verify_rollout" for a in v.actions)
        )
        await self.stack.resolve(self.handle, "chat", "ApprovalDrill")
        return await self.stack.finished(self.handle)


@pytest.fixture
async def pending(stack: RealStack, temporal_client: Client) -> AsyncIterator[Pending]:
    """A real incident waiting for approval in Slack, and the API app that receives the clicks."""

    async def client() -> Client:
        return temporal_client

    app = create_app(stack.settings, client)
    await stack.bad_deploy("chat")
    handle = await stack.open("chat", "ApprovalDrill")
    request = await stack.pending_approval(handle)
    message = await stack.approval_message(request.request_id)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://backout.test") as http:
        yield Pending(stack, handle, request, message, http)
    with contextlib.suppress(RPCError):  # most tests let it finish
        await handle.terminate("test over")


async def _told(slack: SlackReceiver, user: str, text: str) -> bool:
    """The user gets the outcome as an ephemeral message, sent after the answer: wait for it."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            while not any(e["user"] == user and text in e["text"] for e in slack.ephemeral):
                await asyncio.sleep(0.05)
            return True
    return False


@pytest.mark.kube
@pytest.mark.slow
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
    assert await pending.decisions() == []


@pytest.mark.kube
@pytest.mark.slow
async def test_stale_timestamp_gets_401_and_changes_nothing(pending: Pending) -> None:
    body = click_body(pending.message, APPROVER)
    stale = await pending.post(body, signed(body, at=int(time.time()) - 301))
    future = await pending.post(body, signed(body, at=int(time.time()) + 301))
    assert (stale.status_code, future.status_code) == (401, 401)
    assert "stale" in stale.json()["error"]
    assert await pending.decisions() == []


@pytest.mark.kube
@pytest.mark.slow
async def test_approval_resumes_the_workflow_exactly_once_and_replays_are_rejected(
    pending: Pending, pagerduty_receiver: PagerDutyReceiver, slack_receiver: SlackReceiver
) -> None:
    body = click_body(pending.message, APPROVER)
    headers = signed(body)
    first = await pending.post(body, headers)
    assert first.status_code == 200 and first.json()["ok"] is True, first.text
    assert f"Approved by <@{APPROVER}>" in first.json()["text"]

    replay = await pending.post(body, headers)
    assert replay.status_code == 401 and "replayed" in replay.json()["error"]

    again = click_body(pending.message, APPROVER)
    second = await pending.post(again, signed(again))
    assert second.status_code == 200 and second.json()["ok"] is False
    assert "Nothing changed" in second.json()["text"] and "already decided" in second.json()["text"]

    view = await pending.finish_recovered()
    assert view.state == "recovered", timeline(view)
    assert await pending.decisions() == [f"approved by {APPROVER} via slack"]
    assert [a.outcome for a in view.actions if a.action == "rollback"] == ["Successful"]
    assert pending.stack.images("chat") == ["chat:v1"]
    key = dedup_key_for(pending.handle.id)
    actions = pagerduty_receiver.actions()
    assert (
        actions[0] == ("trigger", key) and ("acknowledge", key) in actions and actions[-1] == ("resolve", key)
    )
    assert len(pagerduty_receiver.change_events) == 1
    assert await _told(slack_receiver, APPROVER, "Approved")
    edited = slack_receiver.messages[(pending.message.channel, pending.message.ts)]
    assert not any(block["type"] == "actions" for block in edited.blocks)  # buttons gone once decided


@pytest.mark.kube
@pytest.mark.slow
async def test_user_who_is_not_an_approver_changes_nothing(
    pending: Pending, slack_receiver: SlackReceiver
) -> None:
    body = click_body(pending.message, OUTSIDER)
    response = await pending.post(body, signed(body))
    assert response.status_code == 200 and response.json()["ok"] is False
    assert f"<@{OUTSIDER}> is not an approver for {APPROVER}" in response.json()["text"], response.text
    assert await pending.decisions() == []
    assert await _told(slack_receiver, OUTSIDER, "Not allowed")


@pytest.mark.kube
@pytest.mark.slow
async def test_unknown_request_is_refused_by_the_workflow(pending: Pending) -> None:
    body = click_body(pending.message, APPROVER).replace(pending.request.request_id, "req-99")
    response = await pending.post(body, signed(body))
    assert response.status_code == 200 and response.json()["ok"] is False
    assert "approval request req-99 is not the pending one" in response.json()["text"], response.text
    assert await pending.decisions() == []


@pytest.mark.kube
@pytest.mark.slow
async def test_reject_hands_the_incident_to_a_human(
    pending: Pending, pagerduty_receiver: PagerDutyReceiver
) -> None:
    body = click_body(pending.message, APPROVER, approve=False)
    response = await pending.post(body, signed(body))
    assert response.status_code == 200 and "Rejected by" in response.json()["text"]
    view = await pending.stack.finished(pending.handle)
    assert view.state == "needs_human", timeline(view)
    assert await pending.decisions() == [f"rejected by {APPROVER} via slack"]
    assert pending.stack.images("chat") == ["chat:v2"]
    triggers = [event for event in pagerduty_receiver.events if event["event_action"] == "trigger"]
    assert len(triggers) == 2 and triggers[-1]["payload"]["severity"] == "critical"


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


@pytest.mark.kube
@pytest.mark.slow
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
    assert await pending.decisions() == []


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


@pytest.mark.kube
@pytest.mark.slow
async def test_slow_decision_is_answered_at_once_and_reported_later(
    pending: Pending, slack_receiver: SlackReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slack_api, "ANSWER_BUDGET_S", 0.0)  # as if the update took longer than Slack waits
    body = click_body(pending.message, APPROVER)
    response = await pending.post(body, signed(body))
    assert response.status_code == 200 and "still being applied" in response.json()["text"]
    assert await _told(slack_receiver, APPROVER, "Approved by")
    assert await pending.decisions() == [f"approved by {APPROVER} via slack"]
    view = await pending.finish_recovered()
    assert view.state == "recovered", timeline(view)
