"""The GitOps handshake through the real IncidentWorkflow: a real worker (every activity the
product registers) on the suite's Temporal server, real Flux reconciling a fleet repository served
by git http-backend, the local GitHub API, and PagerDuty/Slack receivers.

The setup of test_problem_is_real: a Flux-managed prompt ConfigMap, a good commit, then a bad one.
An alert about it opens the incident; the runbook rolls the attributed change back and verifies
with the alert (the test resolves it once the rollback is done)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import pytest
from pydantic import SecretStr
from temporalio.client import Client, WorkflowHandle

from activities.incidents import IncidentBehaviour, open_or_join
from activities.kube.client import KubeApis
from api.sources.alertmanager import AlertmanagerPayload
from config import Settings
from config.gitops import GitOpsConfig
from devstack.cluster.local import LocalCluster
from devstack.gitops.forge import ForgeRecorder
from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.server import TlsFiles
from devstack.receivers.slack import SlackReceiver
from incidents.gitops import GitOpsRemediation
from incidents.models import IncidentView, OpenIncidentRequest
from tests.fixtures.receivers import PD_TEST_ROUTING_KEY, SLACK_TEST_TOKEN
from tests.fixtures.temporal import running_worker
from tests.gitops.conftest import (
    Fleet,
    FluxSetup,
    configmap_manifest,
    ensure_git_auth,
    gitops_config,
    wait_until,
)
from tests.gitops.test_handshake import HOLD_S, bad_prompt_applied, stays
from tests.gitops.test_problem_is_real import BAD, GOOD
from tests.pipeline.payloads import alert, notification

pytestmark = [pytest.mark.kube, pytest.mark.slow, pytest.mark.temporal]

PROMPT = "prompt-config"
BAD_LINE = '-  prompt: "Answer from memory; documents are optional."'
GOOD_LINE = '+  prompt: "Answer from the retrieved documents only."'


def runbook(policy: str, mode: str = "auto", deadline: str = "10m", approval: bool = False) -> str:
    approve = (
        "      - request_approval:\n          timeout: 4s\n          on_timeout: abort\n" if approval else ""
    )
    return f"""name: gitops-prompt
mode: {mode}
match:
  alertnames: [PromptQualityLow]
start: act
nodes:
  act:
    actions:
{approve}      - rollback:
          gitops: {policy}
          merge_deadline: {deadline}
      - wait_verify:
          duration: 4s
          timeout: 2m
"""


class Reconciled(Protocol):
    """A reconciler applying the fleet repository into a test namespace (Flux or Argo CD)."""

    namespace: str


class Incident:
    """The worker's settings for one test, and the alert that opens (and resolves) its incident."""

    def __init__(
        self,
        settings: Settings,
        client: Client,
        setup: Reconciled,
        policy: str,
        **runbook_options: Any,
    ) -> None:
        folder = settings.state_dir / "runbooks"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "gitops.yaml").write_text(runbook(policy, **runbook_options), encoding="utf-8")
        self.settings = settings.model_copy(update={"runbook_dir": folder})
        self.client = client
        self.namespace = setup.namespace
        self.started = datetime.now(UTC)

    def _request(self, status: str) -> OpenIncidentRequest:
        fired = self.started.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = notification(
            [alert("PromptQualityLow", PROMPT, self.namespace, status=status, starts_at=fired)], group=PROMPT
        )
        payload = AlertmanagerPayload.model_validate(body)
        return OpenIncidentRequest(key=payload.incident_key(), signal=payload.to_signal(datetime.now(UTC)))

    async def run(
        self, resolve_when: Callable[[IncidentView], bool] | None = None, timeout_s: float = 300
    ) -> IncidentView:
        """Fire the alert; resolve it once `resolve_when(view)` (the remediation happened); the final view."""
        behaviour = IncidentBehaviour(self.settings)
        async with running_worker(self.client, self.settings):
            handle = await open_or_join(self.client, behaviour, self._request("firing"))
            if resolve_when is not None:
                await self._until(handle, resolve_when, timeout_s)
                await open_or_join(self.client, behaviour, self._request("resolved"))
            result = await asyncio.wait_for(handle.result(), timeout=timeout_s)
        return IncidentView.model_validate(result)

    async def _until(
        self,
        handle: WorkflowHandle[Any, IncidentView],
        done: Callable[[IncidentView], bool],
        timeout_s: float,
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            view = await handle.query("view", result_type=IncidentView)
            if done(view):
                return
            if view.state in ("needs_human", "no_action", "shadowed"):
                raise AssertionError(f"incident ended early in {view.state}: {view.timeline_for_people()}")
            await asyncio.sleep(0.5)
        raise AssertionError("the incident did not get there in time")


def rolled_back(view: IncidentView) -> bool:
    return view.state == "verifying"


@pytest.fixture
def gitops_settings(
    backout_settings: Settings,
    kube_cluster: LocalCluster,
    flux_setup: FluxSetup,
    receivers_tls: TlsFiles,
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
) -> Callable[..., Settings]:
    """The worker's settings: the cluster, the fleet's gitops section (tokens as Secret references),
    the paging receivers, and `overrides`."""

    def make(forge: ForgeRecorder | None = None, **overrides: Any) -> Settings:
        ensure_git_auth(flux_setup.apis, flux_setup.namespace)
        gitops = gitops_config(
            flux_setup.fleet, flux_setup.namespace, backout_settings.state_dir / "gitops-cache", forge
        )
        return worker_settings(
            backout_settings,
            kube_cluster,
            flux_setup.namespace,
            gitops,
            receivers_tls,
            pagerduty_receiver,
            slack_receiver,
            **overrides,
        )

    return make


def worker_settings(
    base: Settings,
    cluster: LocalCluster,
    namespace: str,
    gitops: GitOpsConfig,
    receivers_tls: TlsFiles,
    pagerduty: PagerDutyReceiver,
    slack: SlackReceiver,
    **overrides: Any,
) -> Settings:
    """A worker acting in `namespace` of the local cluster, GitOps as given, paging the receivers."""
    return base.model_copy(
        update={
            "kubeconfig": cluster.kubeconfig,
            "allowed_namespaces": [namespace],
            "gitops": gitops,
            "pagerduty_routing_key": SecretStr(PD_TEST_ROUTING_KEY),
            "pagerduty_events_url": pagerduty.url,
            "pagerduty_ca_file": receivers_tls.ca_file,
            "slack_token": SecretStr(SLACK_TEST_TOKEN),
            "slack_api_url": f"{slack.url}/api/",
            "slack_channel": "#incidents",
            **overrides,
        }
    )


def actions_of(view: IncidentView) -> list[tuple[str, str]]:
    return [(record.action, record.outcome) for record in view.actions]


# One remediation, in order: suspend, roll back, revert in Git, verify recovery, then the durable part.
REVERTED_AND_RECONCILED = [
    ("suspend_reconciler", "Successful"),
    ("rollback", "Successful"),
    ("revert_commit", "Successful"),
    ("verify_symptom", "Successful"),
    ("revert_landed", "Successful"),
    ("resume_reconciler", "Successful"),
    ("verify_reconciled", "Successful"),
]


def reverted_and_reconciled(view: IncidentView, reconciler: str, bad: str, fleet: Fleet) -> GitOpsRemediation:
    """The incident recovered through the whole handshake under `reconciler`: the culprit commit
    `bad` found, its revert pushed to the fleet's branch, the reconciler resumed and reconciled."""
    assert view.state == "recovered", view.timeline_for_people()
    assert actions_of(view) == REVERTED_AND_RECONCILED
    progress = view.gitops
    assert progress is not None and progress.stage == "reconciled", progress
    assert progress.ownership is not None
    assert progress.ownership.reconciler.describe() == reconciler
    assert progress.culprit is not None and progress.culprit.commit.sha == bad
    assert progress.revert is not None and progress.revert.revert is not None
    assert fleet.remote_head() == progress.revert.revert.sha
    assert fleet.log()[0] == 'Revert "prompt: let the model improvise"'
    return progress


def suspended(flux_setup: FluxSetup) -> bool:
    return bool(flux_setup.kustomization()["spec"].get("suspend"))


async def test_without_the_handshake_the_real_workflow_rollback_is_undone_by_flux(
    flux_setup: FluxSetup, temporal_client: Client, gitops_settings: Callable[..., Settings]
) -> None:
    """The control: GitOps turned off, the workflow rolls the ConfigMap back in the cluster only,
    verifies, resolves; Flux applies Git's bad prompt again."""
    _good, bad = bad_prompt_applied(flux_setup)
    settings = gitops_settings()
    settings = settings.model_copy(update={"gitops": settings.gitops.model_copy(update={"enabled": False})})
    view = await Incident(settings, temporal_client, flux_setup, "revert_push").run(rolled_back)

    assert view.state == "recovered", view.timeline_for_people()
    assert ("rollback", "Successful") in actions_of(view) and view.gitops is None
    assert not suspended(flux_setup) and flux_setup.fleet.remote_head() == bad
    assert wait_until(lambda: flux_setup.configmap_data(PROMPT) == BAD, 30), "Flux re-applies the bad prompt"


async def test_the_real_workflow_suspends_rolls_back_reverts_resumes_and_the_rollback_sticks(
    flux_setup: FluxSetup,
    temporal_client: Client,
    gitops_settings: Callable[..., Settings],
    kube_apis: KubeApis,
    pagerduty_receiver: PagerDutyReceiver,
) -> None:
    _good, bad = bad_prompt_applied(flux_setup)
    view = await Incident(gitops_settings(), temporal_client, flux_setup, "revert_push").run(rolled_back)

    reconciler = f"Kustomization/{flux_setup.namespace}/apps"
    gitops = reverted_and_reconciled(view, reconciler, bad, flux_setup.fleet)
    assert gitops.revert is not None and gitops.revert.revert is not None
    revert_sha = gitops.revert.revert.sha
    assert gitops.landed is not None and gitops.landed.branch_tip == revert_sha
    assert gitops.reconciled is not None and gitops.reconciled.object_matches is True
    assert gitops.suspended_at and gitops.rolled_back_at and gitops.landed_at and gitops.reconciled_at
    assert gitops.suspended_at <= gitops.rolled_back_at <= gitops.landed_at <= gitops.reconciled_at
    # The changes the incident saw name the commit: the ranking's reasons and the report.
    assert view.attribution is not None
    assert f"introduced by Git commit {bad[:12]} (Dana Developer" in view.attribution.ranking[0].reasons[-1]
    assert f"Git commit {bad[:12]} by Dana Developer" in view.summary
    # Flux runs again, applies the revert, and keeps the good prompt.
    assert not suspended(flux_setup)
    assert flux_setup.applied_revision().endswith(revert_sha)
    assert stays(lambda: flux_setup.configmap_data(PROMPT) == GOOD, HOLD_S)
    assert ("resolve", pagerduty_receiver.actions()[0][1]) in pagerduty_receiver.actions()


async def test_the_real_workflow_waits_for_the_pull_request_and_resumes_after_the_merge(
    flux_setup: FluxSetup,
    temporal_client: Client,
    gitops_settings: Callable[..., Settings],
    forge: ForgeRecorder,
) -> None:
    _good, bad = bad_prompt_applied(flux_setup)
    incident = Incident(gitops_settings(forge), temporal_client, flux_setup, "revert_pr")
    merged: list[str] = []

    def reviewer() -> None:
        """A human reviews the request a while after backout opened it, and merges it."""
        found = wait_until(
            lambda: [r for r in forge.change_requests if flux_setup.fleet.name in r.repository], 120
        )
        assert found, "no pull request was opened"
        time.sleep(8)  # reconciliation stays suspended and the good prompt stays while nobody merged
        assert suspended(flux_setup) and flux_setup.fleet.remote_head() == bad
        assert flux_setup.configmap_data(PROMPT) == GOOD
        merged.append(forge.merge("github", found[0].number))

    review = asyncio.create_task(asyncio.to_thread(reviewer))
    view = await incident.run(rolled_back)
    await review

    assert view.state == "recovered", view.timeline_for_people()
    gitops = view.gitops
    assert gitops is not None and gitops.stage == "reconciled", gitops
    assert gitops.change_request is not None and gitops.change_request.state == "merged"
    assert gitops.landed is not None and gitops.landed.branch_tip == merged[0]
    assert gitops.landed_at is not None and gitops.revert_written_at is not None
    assert (gitops.landed_at - gitops.revert_written_at).total_seconds() >= 8
    assert not suspended(flux_setup) and flux_setup.applied_revision().endswith(merged[0])
    assert stays(lambda: flux_setup.configmap_data(PROMPT) == GOOD, HOLD_S)


async def test_a_conflicting_revert_pages_a_human_with_branch_and_diff_and_flux_stays_suspended(
    flux_setup: FluxSetup,
    temporal_client: Client,
    gitops_settings: Callable[..., Settings],
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
) -> None:
    _good, bad = bad_prompt_applied(flux_setup)
    edited = flux_setup.fleet.commit(
        {"apps/prompt.yaml": configmap_manifest(PROMPT, flux_setup.namespace, BAD, comment_after="prompt")},
        "prompt: note the review",
    )
    flux_setup.wait_applied(edited)
    view = await Incident(gitops_settings(), temporal_client, flux_setup, "revert_push").run(rolled_back)

    assert view.state == "needs_human", view.timeline_for_people()
    assert ("revert_commit", "Failed") in actions_of(view)
    assert "resume_reconciler" not in [record.action for record in view.actions]
    gitops = view.gitops
    assert gitops is not None and gitops.stage == "failed" and gitops.revert is not None
    branch = f"backout/revert-{bad[:12]}-"
    assert gitops.revert.branch.startswith(branch) and gitops.revert.conflict_files == ["apps/prompt.yaml"]
    # Paged with the branch and the diff, through PagerDuty and Slack.
    pages = [e for e in pagerduty_receiver.events if e["event_action"] == "trigger"]
    reason = pages[-1]["payload"]["custom_details"]["reason"]
    assert branch in reason and GOOD_LINE in reason and "stays suspended" in reason, reason
    assert pagerduty_receiver.actions()[-1] == ("trigger", pages[-1].get("dedup_key"))
    needs_human = [m.text for m in slack_receiver.messages.values() if "Needs a human" in m.text]
    assert needs_human and branch in needs_human[-1] and GOOD_LINE in needs_human[-1]
    # Nothing resumed: Flux stays suspended by this incident and the good prompt stays.
    assert suspended(flux_setup)
    assert flux_setup.fleet.remote_head() == edited
    assert stays(lambda: flux_setup.configmap_data(PROMPT) == GOOD, HOLD_S), (
        flux_setup.configmap_data(PROMPT),
        flux_setup.kustomization(),
    )


async def test_a_request_not_merged_by_the_deadline_pages_and_keeps_flux_suspended(
    flux_setup: FluxSetup,
    temporal_client: Client,
    gitops_settings: Callable[..., Settings],
    forge: ForgeRecorder,
    pagerduty_receiver: PagerDutyReceiver,
) -> None:
    _good, bad = bad_prompt_applied(flux_setup)
    incident = Incident(gitops_settings(forge), temporal_client, flux_setup, "revert_pr", deadline="15s")
    view = await incident.run(rolled_back)

    assert view.state == "needs_human", view.timeline_for_people()
    gitops = view.gitops
    assert gitops is not None and gitops.stage == "failed"
    assert gitops.change_request is not None and gitops.change_request.state == "open"
    assert "within 15s" in gitops.message
    reason = [e for e in pagerduty_receiver.events if e["event_action"] == "trigger"][-1]["payload"][
        "custom_details"
    ]["reason"]
    assert gitops.change_request.url in reason and gitops.change_request.head_branch in reason
    assert suspended(flux_setup) and flux_setup.fleet.remote_head() == bad
    assert stays(lambda: flux_setup.configmap_data(PROMPT) == GOOD, HOLD_S), flux_setup.configmap_data(PROMPT)


async def test_shadow_and_approval_show_the_exact_commit_and_diff_and_change_nothing(
    flux_setup: FluxSetup,
    temporal_client: Client,
    gitops_settings: Callable[..., Settings],
    slack_receiver: SlackReceiver,
) -> None:
    _good, bad = bad_prompt_applied(flux_setup)
    shadow = await Incident(
        gitops_settings(), temporal_client, flux_setup, "revert_push", mode="shadow"
    ).run()
    assert shadow.state == "shadowed", shadow.timeline_for_people()
    [record] = [r for r in shadow.actions if r.action == "rollback"]
    assert record.outcome == "would_have" and bad[:12] in record.message
    assert (
        f"Kustomization/{flux_setup.namespace}/apps" in record.message
        and "main (direct push)" in record.message
    )
    assert GOOD_LINE in record.diff and BAD_LINE in record.diff

    approval = await Incident(
        gitops_settings(), temporal_client, flux_setup, "revert_pr", mode="approve", approval=True
    ).run()
    assert approval.approval is not None and approval.approval.revert is not None
    preview = approval.approval.revert
    assert preview.commit == bad and preview.commit_author == "Dana Developer"
    assert preview.target.startswith("branch backout/revert-") and GOOD_LINE in preview.diff
    asked = [m for m in slack_receiver.messages.values() if "Approval needed" in m.text]
    shown = " ".join(str(block) for block in asked[-1].blocks)
    assert bad[:12] in shown and GOOD_LINE in shown

    # Neither changed anything: nothing suspended, nothing pushed, the bad prompt still live.
    assert not suspended(flux_setup) and flux_setup.fleet.remote_head() == bad
    assert flux_setup.configmap_data(PROMPT) == BAD


async def test_a_kube_dry_run_suspends_nothing_pushes_nothing_and_reports_the_revert(
    flux_setup: FluxSetup, temporal_client: Client, gitops_settings: Callable[..., Settings]
) -> None:
    _good, bad = bad_prompt_applied(flux_setup)
    settings = gitops_settings(kube_dry_run=True)
    view = await Incident(settings, temporal_client, flux_setup, "revert_push").run()

    assert view.state == "needs_human", view.timeline_for_people()
    would = {record.action: record for record in view.actions if record.dry_run}
    assert set(would) == {"suspend_reconciler", "rollback", "revert_commit"}, actions_of(view)
    assert all(record.outcome == "would_have" for record in would.values())
    assert bad[:12] in would["revert_commit"].message and GOOD_LINE in would["revert_commit"].diff
    assert view.gitops is not None and view.gitops.stage == "dry_run"
    assert not suspended(flux_setup) and flux_setup.fleet.remote_head() == bad
    assert flux_setup.configmap_data(PROMPT) == BAD
