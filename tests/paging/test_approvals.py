"""Approval end to end on the real IncidentWorkflow (issue 13): through the Slack button (a signed
click to the real API's Slack route) and through `POST /v1/incidents/{id}/approval`; an approval
answers one exact plan (target, from and to version), a new plan withdraws it and asks again, it
expires with the runbook's on_timeout, and the workflow, not an API process, refuses a second
decision, so every API replica agrees."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from incidents.models import ApprovalRequest, IncidentView
from tests.fixtures.temporal import timeline
from tests.paging.real_incident import (
    APPROVER,
    Api,
    RealStack,
    click_body,
    signed,
)

pytestmark = [pytest.mark.temporal, pytest.mark.kube, pytest.mark.slow]


async def _asking(
    stack: RealStack, alertname: str = "ApprovalDrill"
) -> tuple[Api, WorkflowHandle[Any, IncidentView], ApprovalRequest]:
    """A bad deploy, an API replica, and the incident asking for approval of its rollback."""
    await stack.bad_deploy("chat")
    api = await stack.api()
    handle = await stack.open("chat", alertname)
    return api, handle, await stack.pending_approval(handle)


async def _recovers(stack: RealStack, handle: WorkflowHandle[Any, Any], service: str = "chat") -> None:
    """Once the rollback is rolled out, the alert resolves (the verify step waits for it)."""
    await stack.until(
        handle, "rolled back and verifying", lambda v: any(a.action == "verify_rollout" for a in v.actions)
    )
    await stack.resolve(handle, service, "ApprovalDrill")


async def test_approve_through_the_slack_button_rolls_back_exactly_the_approved_plan(
    stack: RealStack,
) -> None:
    api, handle, pending = await _asking(stack)
    [planned] = pending.plan
    assert planned.action == "rollback" and planned.target == f"deployment/{stack.namespace}/chat"
    assert (planned.from_version, planned.to_version) == ("chat:v2", "chat:v1"), planned
    message = await stack.approval_message(pending.request_id)
    assert "rollback deployment/" in message.text and "from chat:v2 to chat:v1" in message.text, message.text

    body = click_body(message, APPROVER)
    answer = await api.click(body, signed(body))
    assert answer.status_code == 200 and answer.json()["ok"] is True, answer.text
    assert f"Approved by <@{APPROVER}>" in answer.json()["text"]
    await _recovers(stack, handle)
    view = await stack.finished(handle)

    assert view.state == "recovered", timeline(view)
    assert stack.images("chat") == ["chat:v1"]
    [rollback] = [a for a in view.actions if a.action == "rollback"]
    assert rollback.outcome == "Successful" and rollback.target == planned.target.replace(
        "deployment/", "deployment/"
    )
    assert any(f"approved by {APPROVER} via slack" in e.message for e in view.timeline), timeline(view)


async def test_approve_through_the_api(stack: RealStack) -> None:
    api, handle, pending = await _asking(stack)
    answer = await api.approve(handle.id, pending.request_id, plan_id=pending.plan_id)
    assert answer.status_code == 200, answer.text
    assert answer.json()["decision"] == "approved"
    await _recovers(stack, handle)
    view = await stack.finished(handle)
    assert view.state == "recovered", timeline(view)
    assert stack.images("chat") == ["chat:v1"]
    assert any(f"approved by {APPROVER} via api" in e.message for e in view.timeline)


async def test_reject_changes_nothing_and_hands_the_incident_to_a_human(stack: RealStack) -> None:
    api, handle, pending = await _asking(stack)
    message = await stack.approval_message(pending.request_id)
    body = click_body(message, APPROVER, approve=False)
    answer = await api.click(body, signed(body))
    assert answer.status_code == 200 and f"Rejected by <@{APPROVER}>" in answer.json()["text"], answer.text
    view = await stack.finished(handle)
    assert view.state == "needs_human", timeline(view)
    assert not [a for a in view.actions if a.action == "rollback"]
    assert stack.images("chat") == ["chat:v2"]
    assert any(f"remediation rejected by {APPROVER}" in e.message for e in view.timeline)


async def test_an_unanswered_request_expires_with_the_runbooks_on_timeout(stack: RealStack) -> None:
    api, handle, pending = await _asking(stack, "ApprovalExpires")
    view = await stack.finished(handle)
    assert view.state == "needs_human", timeline(view)
    assert any("approval not given within 5s" in e.message for e in view.timeline), timeline(view)
    assert stack.images("chat") == ["chat:v2"]
    late = await api.approve(handle.id, pending.request_id)
    assert late.status_code in (404, 409), late.text  # the incident is closed: nothing can decide it


async def test_a_new_culprit_withdraws_the_pending_approval_and_the_stale_one_is_refused(
    stack: RealStack,
) -> None:
    api, handle, first = await _asking(stack)
    assert [(c.from_version, c.to_version) for c in first.plan] == [("chat:v2", "chat:v1")]

    await stack.deploy("chat", "chat:v3")  # a new change joins while the approval waits
    second = await stack.pending_approval(handle, other_than=first.request_id)
    assert second.plan_id != first.plan_id
    # The culprit is still v2 (v3 came after the symptom began), but what runs now is v3: the plan
    # the approver sees says so.
    assert [(c.from_version, c.to_version) for c in second.plan] == [("chat:v3", "chat:v1")], second.plan
    stale = await api.approve(handle.id, first.request_id, plan_id=first.plan_id)
    assert stale.status_code == 409 and "stale" in stale.text and "plan changed" in stale.text, stale.text
    wrong_plan = await api.approve(handle.id, second.request_id, plan_id=first.plan_id)
    assert wrong_plan.status_code == 409 and f"plan {first.plan_id}" in wrong_plan.text, wrong_plan.text
    old_message = await stack.approval_message(first.request_id)
    body = click_body(old_message, APPROVER)
    click = await api.click(body, signed(body))
    assert click.status_code == 200 and click.json()["ok"] is False and "stale" in click.json()["text"]

    answer = await api.approve(handle.id, second.request_id, plan_id=second.plan_id)
    assert answer.status_code == 200, answer.text
    await _recovers(stack, handle)
    view = await stack.finished(handle)
    assert view.state == "recovered", timeline(view)
    assert stack.images("chat") == ["chat:v1"]  # the approved plan: from v3 back to v1
    assert any(f"approval {first.request_id} withdrawn" in e.message for e in view.timeline)


async def test_a_second_decision_is_refused_by_the_workflow_through_another_api_replica(
    stack: RealStack,
) -> None:
    await stack.bad_deploy("chat")
    first_api, second_api = await asyncio.gather(stack.api(), stack.api())
    # A cool-down keeps the incident running after the decision, so the one made after the fact
    # below reaches the workflow: without one a rejected incident closes at once, and the API then
    # answers 404 (no running incident) before the workflow can refuse it.
    handle = await stack.open("chat", "ApprovalDrill", cooldown_s=10.0)
    pending = await stack.pending_approval(handle)
    message = await stack.approval_message(pending.request_id)

    # Both replicas at once: one decision wins, the other is refused, whichever replica it reached.
    body = click_body(message, APPROVER, approve=False)
    answers = await asyncio.gather(
        first_api.approve(handle.id, pending.request_id, plan_id=pending.plan_id),
        second_api.click(body, signed(body)),
    )
    approved_by_api = answers[0].status_code == 200
    rejected_by_slack = answers[1].status_code == 200 and answers[1].json()["ok"] is True
    assert approved_by_api != rejected_by_slack, [a.text for a in answers]
    refusal = answers[1].json()["text"] if approved_by_api else answers[0].text
    assert "already decided" in refusal, refusal

    # And after the fact, through either replica.
    again = await second_api.approve(handle.id, pending.request_id, approve=not approved_by_api)
    assert again.status_code == 409 and "already decided" in again.text, again.text

    if approved_by_api:
        await _recovers(stack, handle)
    view = await stack.finished(handle)
    decisions = [e for e in view.timeline if e.step == "approval" and (" by " in e.message)]
    assert len(decisions) == 1, timeline(view)
    assert view.state == ("recovered" if approved_by_api else "needs_human"), timeline(view)
