"""The GitOps handshake on real Flux, the setup of test_problem_is_real: suspend exactly the
owning Kustomization, roll back in the cluster, revert the culprit commit in Git (direct push,
or a pull request a human merges), resume once the branch holds the revert, and verify Flux
applied the good version and keeps it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi

from activities.gitops.activities import (
    ChangeRequestStateRequest,
    FindCulpritRequest,
    GitOpsActivities,
    OpenChangeRequestRequest,
    ResolveOwnerRequest,
    ResumeRequest,
    RevertLandedRequest,
    SuspendRequest,
    VerifyReconciledRequest,
    WriteRevertRequest,
)
from activities.gitops.reconcilers import FLUX_REQUESTED_AT, SUSPENDED_BY
from activities.kube import history
from devstack.cluster.local import LocalCluster
from devstack.gitops.fleet import DEVELOPER
from devstack.gitops.forge import ForgeRecorder
from incidents.gitops import CulpritCommit, ObjectRef, Ownership, SuspensionRecord
from tests.gitops.conftest import FluxSetup, configmap_manifest, wait_until
from tests.gitops.test_problem_is_real import BAD, GOOD, backout

pytestmark = [pytest.mark.kube, pytest.mark.slow]

HOLD_S = 8.0  # four reconcile intervals


def stays(check: Callable[[], bool], seconds: float) -> bool:
    """`check()` holds at every poll for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not check():
            return False
        time.sleep(0.5)
    return check()


def bad_prompt_applied(flux_setup: FluxSetup) -> tuple[str, str]:
    namespace, fleet = flux_setup.namespace, flux_setup.fleet
    good = fleet.commit(
        {"apps/prompt.yaml": configmap_manifest("prompt-config", namespace, GOOD)}, "prompt: ground answers"
    )
    flux_setup.create()
    flux_setup.wait_applied(good)
    history.record_now(flux_setup.apis, namespace)
    bad = fleet.commit(
        {"apps/prompt.yaml": configmap_manifest("prompt-config", namespace, BAD)},
        "prompt: let the model improvise",
    )
    flux_setup.wait_applied(bad)
    assert wait_until(lambda: flux_setup.configmap_data("prompt-config") == BAD, 30)
    history.record_now(flux_setup.apis, namespace)
    return good, bad


async def owner_and_culprit(
    activities: GitOpsActivities, flux_setup: FluxSetup, bad: str
) -> tuple[Ownership, CulpritCommit]:
    target = ObjectRef(
        api_version="v1", kind="ConfigMap", name="prompt-config", namespace=flux_setup.namespace
    )
    owned = await activities.resolve_owner(ResolveOwnerRequest(object=target))
    ownership = owned.ownership
    assert ownership is not None, owned.message
    assert ownership.reconciler.describe() == f"Kustomization/{flux_setup.namespace}/apps"
    assert ownership.reconciler.evidence.startswith("labels kustomize.toolkit.fluxcd.io/name=apps")
    assert ownership.source is not None
    assert (ownership.source.repo_url, ownership.source.branch, ownership.source.path) == (
        flux_setup.fleet.url,
        "main",
        "apps",
    )
    assert ownership.source.revision == bad
    found = await activities.find_culprit(FindCulpritRequest(ownership=ownership))
    assert found.outcome == "Successful" and found.culprit is not None, found.message
    commit = found.culprit.commit
    assert (commit.sha, commit.author_name, commit.author_email) == (bad, *DEVELOPER)
    assert commit.subject == "prompt: let the model improvise"
    assert [file.path for file in commit.files] == ["apps/prompt.yaml"]
    assert found.culprit.matches_live is True
    return ownership, found.culprit


async def suspend_and_roll_back(
    activities: GitOpsActivities,
    flux_setup: FluxSetup,
    ownership: Ownership,
    kube_cluster: LocalCluster,
    incident: str,
) -> SuspensionRecord:
    suspended = await activities.suspend(
        SuspendRequest(incident_id=incident, reconciler=ownership.reconciler)
    )
    assert suspended.outcome == "Successful" and suspended.record is not None
    kustomization = flux_setup.kustomization()
    assert kustomization["spec"]["suspend"] is True
    assert kustomization["metadata"]["annotations"][SUSPENDED_BY] == incident
    # The controller handled the suspended object (after any reconcile that was running) before
    # anything is rolled back: it echoes the suspension's reconcile request in its status.
    requested = kustomization["metadata"]["annotations"][FLUX_REQUESTED_AT]
    assert requested.startswith(f"backout-suspend-{incident}-")
    assert kustomization["status"]["lastHandledReconcileAt"] == requested
    # Exactly the owner: its GitRepository keeps fetching.
    repository: Any = CustomObjectsApi(flux_setup.apis.api_client).get_namespaced_custom_object(
        "source.toolkit.fluxcd.io", "v1", flux_setup.namespace, "gitrepositories", "fleet"
    )
    assert not repository["spec"].get("suspend")
    rolled = backout(
        ["rollback", "configmap/prompt-config", "-n", flux_setup.namespace], kube_cluster.kubeconfig
    )
    assert rolled.returncode == 0, rolled.stderr
    assert stays(lambda: flux_setup.configmap_data("prompt-config") == GOOD, HOLD_S), (
        "suspended Flux must not re-apply"
    )
    return suspended.record


async def resume_and_verify(
    activities: GitOpsActivities,
    flux_setup: FluxSetup,
    ownership: Ownership,
    record: SuspensionRecord,
    revision: str,
) -> None:
    resumed = await activities.resume(ResumeRequest(record=record))
    assert resumed.outcome == "Successful" and resumed.resumed, resumed.message
    assert flux_setup.kustomization()["spec"]["suspend"] is False
    reconciled = await activities.verify_reconciled(
        VerifyReconciledRequest(ownership=ownership, expected_revision=revision, timeout_s=90, poll_s=1)
    )
    assert reconciled.outcome == "Successful", reconciled.message
    assert reconciled.object_matches is True
    assert flux_setup.applied_revision().endswith(revision)
    assert stays(lambda: flux_setup.configmap_data("prompt-config") == GOOD, HOLD_S), (
        "Flux must keep the good prompt"
    )


async def test_revert_pushed_to_the_tracked_branch_makes_the_rollback_stick(
    flux_setup: FluxSetup, kube_cluster: LocalCluster, make_activities: Callable[..., GitOpsActivities]
) -> None:
    _good, bad = bad_prompt_applied(flux_setup)
    activities = make_activities()
    ownership, culprit = await owner_and_culprit(activities, flux_setup, bad)
    record = await suspend_and_roll_back(activities, flux_setup, ownership, kube_cluster, "inc-push-1")

    dry = await activities.write_revert(
        WriteRevertRequest(incident_id="inc-push-1", culprit=culprit, mode="push", dry_run=True)
    )
    assert dry.outcome == "Successful" and dry.revert is not None and dry.revert.pushed_to == ""
    assert flux_setup.fleet.remote_head() == bad, "a dry run pushes nothing"
    assert '-  prompt: "Answer from memory; documents are optional."' in dry.diff

    written = await activities.write_revert(
        WriteRevertRequest(incident_id="inc-push-1", culprit=culprit, mode="push")
    )
    assert written.outcome == "Successful" and written.revert is not None, written.message
    assert written.revert.pushed_to == "main" and flux_setup.fleet.remote_head() == written.revert.sha
    again = await activities.write_revert(
        WriteRevertRequest(incident_id="inc-push-1", culprit=culprit, mode="push")
    )
    assert again.already_reverted and again.revert is not None and again.revert.sha == written.revert.sha

    landed = await activities.revert_landed(
        RevertLandedRequest(culprit=culprit, revert_sha=written.revert.sha)
    )
    assert landed.landed and landed.branch_tip == written.revert.sha, landed.evidence
    await resume_and_verify(activities, flux_setup, ownership, record, written.revert.sha)


async def test_revert_through_a_pull_request_resumes_only_after_the_merge(
    flux_setup: FluxSetup,
    kube_cluster: LocalCluster,
    make_activities: Callable[..., GitOpsActivities],
    forge: ForgeRecorder,
) -> None:
    _good, bad = bad_prompt_applied(flux_setup)
    activities = make_activities(forge)
    ownership, culprit = await owner_and_culprit(activities, flux_setup, bad)
    record = await suspend_and_roll_back(activities, flux_setup, ownership, kube_cluster, "inc-pr-1")

    written = await activities.write_revert(
        WriteRevertRequest(incident_id="inc-pr-1", culprit=culprit, mode="branch")
    )
    assert written.outcome == "Successful" and written.revert is not None, written.message
    assert written.branch == f"backout/revert-{bad[:12]}-inc-pr-1"
    assert flux_setup.fleet.remote_head() == bad, "the tracked branch is untouched until the merge"
    opened = await activities.open_change_request(
        OpenChangeRequestRequest(incident_id="inc-pr-1", culprit=culprit, revert=written.revert)
    )
    assert opened.outcome == "Successful" and opened.change_request is not None
    request = opened.change_request
    assert (request.head_branch, request.base_branch, request.state) == (written.branch, "main", "open")
    posted = next(
        c for c in forge.calls if c.method == "POST" and c.status == 201 and flux_setup.fleet.name in c.path
    )
    assert posted.body["title"] == 'Revert "prompt: let the model improvise" (backout inc-pr-1)'
    assert bad in posted.body["body"]

    not_yet = await activities.revert_landed(
        RevertLandedRequest(culprit=culprit, revert_sha=written.revert.sha)
    )
    assert not not_yet.landed
    merged_tip = forge.merge("github", request.number)
    state = await activities.change_request_state(
        ChangeRequestStateRequest(repo_url=flux_setup.fleet.url, number=request.number)
    )
    assert state.change_request is not None and state.change_request.state == "merged"
    landed = await activities.revert_landed(
        RevertLandedRequest(culprit=culprit, revert_sha=written.revert.sha)
    )
    assert landed.landed and landed.branch_tip == merged_tip, landed.evidence
    await resume_and_verify(activities, flux_setup, ownership, record, merged_tip)


async def test_a_conflicting_revert_is_failed_with_branch_and_diff_and_flux_stays_suspended(
    flux_setup: FluxSetup, kube_cluster: LocalCluster, make_activities: Callable[..., GitOpsActivities]
) -> None:
    _good, bad = bad_prompt_applied(flux_setup)
    activities = make_activities()
    ownership, culprit = await owner_and_culprit(activities, flux_setup, bad)
    record = await suspend_and_roll_back(activities, flux_setup, ownership, kube_cluster, "inc-conflict-1")
    # Someone edits the line right after the culprit's (a comment: the object is unchanged).
    edited = flux_setup.fleet.commit(
        {
            "apps/prompt.yaml": configmap_manifest(
                "prompt-config", flux_setup.namespace, BAD, comment_after="prompt"
            )
        },
        "prompt: note the review",
    )
    written = await activities.write_revert(
        WriteRevertRequest(incident_id="inc-conflict-1", culprit=culprit, mode="push")
    )
    assert written.outcome == "Failed"
    assert written.conflict_files == ["apps/prompt.yaml"]
    assert written.branch == f"backout/revert-{bad[:12]}-inc-conflict-1"
    assert '+  prompt: "Answer from the retrieved documents only."' in written.diff
    assert "conflicts" in written.message and flux_setup.fleet.remote_head() == edited
    landed = await activities.revert_landed(RevertLandedRequest(culprit=culprit))
    assert not landed.landed
    # Nothing resumes: the Kustomization stays suspended and the good prompt stays.
    assert flux_setup.kustomization()["spec"]["suspend"] is True
    assert record.reconciler.describe() == ownership.reconciler.describe()
    assert stays(lambda: flux_setup.configmap_data("prompt-config") == GOOD, HOLD_S)
