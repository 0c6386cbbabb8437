"""Issue 12, finding "Reported changes can frame an innocent target": on the main of the issue
POST /v1/changes took ids in the cluster ledger's own form (shadowing the real change), `author:
backout` (hiding a change from the candidates), `namespace: null` (a candidate in every
namespace) and a rollback handle in another namespace (even on a Secret); a reported change was
ranked first for an unrelated incident, and change descriptions reached Slack unescaped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from activities.changes_store import ChangeStore
from activities.context import build_bundle
from activities.paging.channels.slack import SlackChannel, approval_blocks
from config import Settings
from devstack.receivers.slack import SlackReceiver
from incidents.bundle import Change, RollbackHandle
from incidents.gitops import RevertPreview
from incidents.models import ApprovalRequest, ContextRequest, Culprit, IncidentReport, NotifyRequest
from tests.fixtures.receivers import SLACK_TEST_TOKEN
from tests.security.conftest import OPERATOR, REPORTER, SecureStack

pytestmark = [pytest.mark.temporal]


def _change(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"deploy-{datetime.now(UTC).timestamp()}",
        "service": "rag-api",
        "namespace": "prod",
        "kind": "image",
        "started_at": (datetime.now(UTC) - timedelta(minutes=3)).isoformat(),
        "author": "ci",
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("claim", "status", "reason"),
    [
        ({"id": "k8s:deployment:prod/rag-api:rev7"}, 422, "prefix of backout's own change ledger"),
        ({"id": "backout:rollback:1"}, 422, "prefix of backout's own change ledger"),
        ({"author": "backout"}, 422, "reserved for backout's own remediations"),
        ({"author": "Backout "}, 422, "reserved for backout's own remediations"),
        ({"namespace": None}, 422, "namespace: required"),
        ({"namespace": "kube-system"}, 403, "outside the allow list"),
        (
            {"rollback": {"type": "deployment", "name": "payments", "namespace": "staging"}},
            422,
            "is not the change's namespace",
        ),
        ({"rollback": {"type": "secret", "name": "db-password"}}, 422, "not 'secret'"),
        ({"reported_by": "release-manager"}, 422, "reported_by"),
    ],
    ids=["ledger id", "backout id", "author backout", "author Backout", "no namespace", "namespace outside",
         "handle elsewhere", "handle on a secret", "reporter spoofed"],
)  # fmt: skip
async def test_a_reported_change_may_not_claim_what_is_not_its_own(
    secure_stack: SecureStack, claim: dict[str, Any], status: int, reason: str
) -> None:
    async with secure_stack.http(REPORTER) as http:
        answer = await http.post("/v1/changes", json=_change(**claim))
    assert answer.status_code == status, answer.text
    assert reason in answer.json()["detail"]


async def test_a_reported_change_carries_the_reporters_identity(secure_stack: SecureStack) -> None:
    change = _change(rollback={"type": "deployment", "name": "rag-api"})
    async with secure_stack.http(REPORTER) as http:
        assert (await http.post("/v1/changes", json=change)).status_code == 201
    async with secure_stack.http(OPERATOR) as http:
        listed = (await http.get("/v1/changes", params={"namespace": "prod"})).json()["changes"]
    [stored] = [c for c in listed if c["id"] == change["id"]]
    assert stored["reported_by"] == "reporter"
    assert stored["rollback"]["namespace"] == "prod", "the handle is pinned to the change's namespace"


def test_old_reported_changes_without_a_namespace_frame_no_incident(tmp_path: Path) -> None:
    """A change stored before reporters had to name a namespace (as the main of the issue took
    `namespace: null`) and a change of another namespace are no candidates of a prod incident."""
    settings = Settings(state_dir=tmp_path, allowed_namespaces=["prod", "staging"])
    now = datetime.now(UTC)
    store = ChangeStore(settings.change_store_file)
    framing = Change(
        id="everywhere",
        service="payments",
        namespace=None,
        kind="config",
        started_at=now - timedelta(minutes=5),
        rollback=RollbackHandle(type="secret", name="db-password", namespace="kube-system"),
    )
    elsewhere = Change(
        id="other-ns", service="rag-api", namespace="staging", started_at=now - timedelta(minutes=4)
    )
    own = Change(id="own", service="rag-api", namespace="prod", started_at=now - timedelta(minutes=3))
    for change in (framing, elsewhere, own):
        store.put(change, now)
    store.close()
    request = ContextRequest(
        incident_id="incident-prod",
        service="rag-api",
        namespace="prod",
        source="alertmanager",
        detected_at=now,
    )
    bundle = build_bundle(settings, request, now).bundle
    assert [change.id for change in bundle.changes] == ["own"]


async def test_change_text_reaches_slack_as_text(slack_receiver: SlackReceiver, tmp_path: Path) -> None:
    """`<!channel>`, links and `&<>` in a change description are shown, never acted on."""
    settings = Settings(
        state_dir=tmp_path,
        slack_token=SecretStr(SLACK_TEST_TOKEN),
        slack_api_url=f"{slack_receiver.url}/api/",
        slack_channel="#incidents",
    )
    hostile = "<!channel> rollback done, see <http://evil.example/login|the runbook> & <@U0BOSS>"
    report = _report(
        title="<!here> LLMErrorBudgetBurn on rag-api (prod)",
        state="needs_human",
        symptom="error rate <!subteam^S0> up",
        culprits=[Culprit(change_id="deploy-1", probability=0.9, change=hostile, reasons=[hostile])],
        done=[hostile],
        summary=hostile,
    )
    result = SlackChannel(settings).send(NotifyRequest(event="opened", report=report))
    assert result.outcome == "Successful", result.message
    reply = SlackChannel(settings).send(
        NotifyRequest(event="needs_human", report=report, thread=result.thread, detail=hostile)
    )
    assert reply.outcome == "Successful", reply.message
    sent = [call.arguments for call in slack_receiver.calls_of("chat.postMessage")]
    assert len(sent) == 2
    for arguments in sent:
        texts = [arguments["text"], *_mrkdwn_texts(arguments["blocks"])]
        for text in texts:
            assert "<!" not in text and "<http" not in text and "<@U0BOSS>" not in text, text
        assert any("&lt;!channel&gt;" in text for text in texts)
        assert any("&amp;" in text for text in texts)


def _mrkdwn_texts(blocks: list[dict[str, Any]]) -> list[str]:
    texts: list[str] = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict) and text.get("type") == "mrkdwn":
            texts.append(text["text"])
        for item in [*block.get("fields", []), *block.get("elements", [])]:
            if isinstance(item, dict) and item.get("type") == "mrkdwn":
                texts.append(item["text"])
    return texts


def test_a_gitops_revert_preview_reaches_slack_as_text() -> None:
    """A commit subject, author and diff come from whoever pushed to Git: shown, never acted on."""
    hostile = "<!channel> approve now <http://evil.example|docs> & <@U0BOSS>"
    preview = RevertPreview(
        policy="revert_pr",
        reconciler="Kustomization/flux-system/fleet",
        repository="http://127.0.0.1/fleet.git",
        commit="ea23db170fb4aa",
        commit_author=hostile,
        commit_subject=hostile,
        target="backout/revert-ea23 <!here>",
        diff=f"-prompt: good\n+prompt: {hostile}",
    )
    report = _report(
        title="LLMErrorBudgetBurn on rag-api (prod)",
        state="awaiting_approval",
        approval=ApprovalRequest(
            request_id="r-1", expires_at=datetime.now(UTC) + timedelta(minutes=15), revert=preview
        ),
    )
    text, blocks = approval_blocks(NotifyRequest(event="approval_requested", report=report))
    texts = [text, *_mrkdwn_texts(blocks)]
    for said in texts:
        assert "<!" not in said and "<http" not in said and "<@U0BOSS>" not in said, said
    assert any("&lt;!channel&gt;" in said and "ea23db170fb4" in said for said in texts)


def _report(**fields: Any) -> IncidentReport:
    """A report of an alertmanager incident of rag-api in prod, with `fields`."""
    return IncidentReport(
        incident_id="incident-prod-rag-api-0123456789abcdef",
        service="rag-api",
        namespace="prod",
        source="alertmanager",
        detected_at=datetime.now(UTC),
        **fields,
    )
