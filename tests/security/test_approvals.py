"""Issue 12, finding "Approvals trust the body": on the main of the issue a POST of
`"user": "ml-oncall", "source": "slack"` with the alert token was logged as "approved by ml-oncall
via slack", a real approver's Slack click was refused (the shipped runbook named a team, the click
carried a Slack user id), and a `mode: approve` action without `request_approval` let anyone approve.

Now who approves is the verified Slack user or the API credential's identity; runbook approvers
and the ownership file speak the same identities (Slack user and group ids, emails, teams); a
runbook that names no approvers is decided by the owning team's approvers. On the real
IncidentWorkflow, the real worker, the local control plane, `backout api` processes and the local
Slack receiver (which answers users.info and usergroups.users.list).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client, WorkflowHandle

from activities.kube.client import KubeApis
from api.approvers import judge
from config import Settings
from devstack.cluster.local import LocalCluster
from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.server import TlsFiles
from devstack.receivers.slack import SlackReceiver
from incidents.actions import ApprovalAction
from incidents.models import ApprovalRequest, ApprovalScope, IncidentView
from runbooks.engine import decide
from runbooks.loader import load_runbooks
from tests.paging.real_incident import (
    Api,
    RealStack,
    click_body,
    real_stack,
    signed,
    stack_settings,
)
from tests.runbooks.test_engine import WEDNESDAY, context

pytestmark = [pytest.mark.temporal, pytest.mark.kube, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ALICE = "U0ALICE01"  # approver by Slack user id
BOB = "U0BOB0002"  # approver as a member of the Slack user group S0ONCALL
CAROL = "U0CAROL03"  # approver by email
MALLORY = "U0MALLORY"
LEAD_EMAIL = "oncall-lead@example.com"
OPERATOR_IDENTITY = "ops-bot@example.com"  # the operator credential's identity: not an approver


def _owners(directory: Path, namespace: str) -> Path:
    path = directory / "owners.yaml"
    path.write_text(
        f"""
teams:
  ml-platform:
    slack_channel: "#ml-incidents"
    approvers: [{ALICE}, S0ONCALL, {LEAD_EMAIL}]
namespaces:
  {namespace}: ml-platform
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
async def stack(
    temporal_client: Client,
    backout_settings: Settings,
    kube_cluster: LocalCluster,
    kube_apis: KubeApis,
    kube_namespace: str,
    receivers_tls: TlsFiles,
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
    tmp_path: Path,
) -> AsyncIterator[RealStack]:
    slack_receiver.user_groups = {"S0ONCALL": [BOB]}
    slack_receiver.user_emails = {CAROL: LEAD_EMAIL, MALLORY: "mallory@example.com"}
    settings = stack_settings(
        backout_settings,
        kube_cluster.kubeconfig,
        kube_namespace,
        _owners(tmp_path, kube_namespace),
        receivers_tls,
        pagerduty_receiver,
        slack_receiver,
        runbook_dir=Path(__file__).parent / "runbooks",
        operator_identity=OPERATOR_IDENTITY,
        allow_anonymous_loopback=False,
        sender_token=SecretStr("sender-token-of-the-approval-drill"),
    )
    async with real_stack(
        temporal_client, settings, kube_apis, kube_namespace, slack_receiver, pagerduty_receiver
    ) as running:
        yield running


async def _asking(stack: RealStack) -> tuple[Api, WorkflowHandle[Any, IncidentView], ApprovalRequest]:
    await stack.bad_deploy("chat")
    api = await stack.api()
    handle = await stack.open("chat", "OwnerApproval")
    pending = await stack.pending_approval(handle)
    assert pending.approvers == [], "the runbook names nobody: the owning team decides"
    return api, handle, pending


async def test_the_approver_is_the_verified_identity_never_the_body(stack: RealStack) -> None:
    api, handle, pending = await _asking(stack)
    # The body cannot name the approver, whatever credential sends it.
    forged = await api.approve(handle.id, pending.request_id, user="ml-oncall", source="slack")
    assert forged.status_code == 422 and "credential" in forged.json()["detail"], forged.text
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        with_sender = await http.post(
            f"/v1/incidents/{handle.id}/approval",
            json={"request_id": pending.request_id, "approve": True},
            headers={"Authorization": "Bearer sender-token-of-the-approval-drill"},
        )
    assert with_sender.status_code == 403, with_sender.text
    # The operator credential's identity is not an approver of the owning team.
    as_operator = await api.approve(handle.id, pending.request_id)
    assert as_operator.status_code == 403, as_operator.text
    assert f"{OPERATOR_IDENTITY} is not an approver for ml-platform" in as_operator.json()["detail"]
    # A Slack user who is no approver clicks: nothing happens.
    message = await stack.approval_message(pending.request_id)
    body = click_body(message, MALLORY)
    refused = await api.click(body, signed(body))
    assert refused.status_code == 200 and refused.json()["ok"] is False, refused.text
    assert "Not allowed" in refused.json()["text"]
    view = await handle.query("view", result_type=IncidentView)
    assert view.state == "awaiting_approval" and not any("approved by" in e.message for e in view.timeline)
    # A member of the Slack user group the team lists approves.
    body = click_body(message, BOB)
    approved = await api.click(body, signed(body))
    assert approved.status_code == 200 and approved.json()["ok"] is True, approved.text
    await stack.until(
        handle, "approved", lambda v: any(f"approved by {BOB} via slack" in e.message for e in v.timeline)
    )
    await stack.until(handle, "rolling back", lambda v: v.state != "awaiting_approval")


async def test_an_approver_named_by_email_approves_through_the_api(stack: RealStack) -> None:
    """The operator credential of an API whose identity is the team's email approver."""
    _, handle, pending = await _asking(stack)
    replica = await stack.api(operator_identity=LEAD_EMAIL)
    answer = await replica.approve(handle.id, pending.request_id)
    assert answer.status_code == 200 and answer.json()["by"] == LEAD_EMAIL, answer.text
    await stack.until(
        handle,
        "approved",
        lambda v: any(f"approved by {LEAD_EMAIL} via api" in e.message for e in v.timeline),
    )


def test_the_shipped_runbook_is_approvable_from_slack_by_the_shipped_owners() -> None:
    """llm-quality-rollback asks approval for an image rollback; deploy/owners.yaml's approvers of the
    team owning the service (rag-api in demo: ml-platform) may click, nobody else."""
    library = load_runbooks()
    ctx = context(kind="image", probability=0.9, namespace="demo", now=WEDNESDAY).model_copy(
        update={"service": "rag-api"}
    )
    decision = decide(library, ctx)
    assert decision.runbook == "llm-quality-rollback"
    [approval] = [action for action in decision.actions if isinstance(action, ApprovalAction)]
    scope = ApprovalScope(
        approval=ApprovalRequest(request_id="r", approvers=approval.approvers, expires_at=WEDNESDAY),
        service="rag-api",
        namespace="demo",
    )
    shipped = Settings(ownership_file=REPO / "deploy" / "owners.yaml")
    assert judge(shipped, scope, "U0ALICE01").refusal is None
    assert judge(shipped, scope, "U0BOB0002").refusal is None
    assert "not an approver" in str(judge(shipped, scope, MALLORY).refusal)


def test_nobody_approves_what_names_no_approver_and_has_no_owning_team() -> None:
    """A `mode: approve` action without `request_approval` (no approvers) on an unowned service."""
    scope = ApprovalScope(
        approval=ApprovalRequest(request_id="r", approvers=[], expires_at=WEDNESDAY),
        service="nobody-owns-this",
        namespace="elsewhere",
    )
    owned = Settings(ownership_file=REPO / "deploy" / "owners.yaml")
    assert "nobody may approve" in str(judge(owned, scope, "U0ALICE01").refusal)
    assert "nobody may approve" in str(judge(Settings(), scope, "U0ALICE01").refusal)
