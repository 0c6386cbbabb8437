"""The GitOps handshake: a rollback that sticks when Flux or Argo CD applies the culprit's object.

One remediation in two halves, both workflow code (deterministic; Git and the cluster are reached
through GitOpsActivities):

- `rollback` (the rollback action's execution): find the owner and the culprit commit, suspend
  exactly that owner (recorded in `view.gitops`), roll back in the cluster as for any object (fast
  recovery), then write the revert to Git as the runbook's `gitops` policy says: a revert commit
  pushed to a branch with a pull/merge request, or pushed to the tracked branch.
- `finish` (once recovery is verified): wait, durably and until the runbook's `merge_deadline`,
  for the tracked branch to hold the reverted state; resume exactly what was suspended; verify
  that the reconciler applied the good revision and the live object carries it, and that the
  symptom stays gone. A revert that conflicts, a request closed or not merged in time, a resume
  or a reconcile that fails: the owners are paged with the branch and the diff, and
  reconciliation stays suspended (never silently resumed onto the bad version).

Shadow mode and approval requests show the exact commit and diff (`shadow`, `approval_preview`);
with kube dry runs nothing is suspended or pushed and the "would have" revert is reported.
Only rollbacks of changes the ledger found GitOps-managed come here, each behind
`workflow.patched(HANDSHAKE_PATCH)`: other incidents keep their command sequence.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.gitops.activities import (
        ChangeRequestStateRequest,
        GitOpsActivities,
        OpenChangeRequestRequest,
        Prepared,
        PrepareRequest,
        ResumeRequest,
        RevertLandedRequest,
        SuspendRequest,
        VerifyReconciledRequest,
        WriteRevertRequest,
    )
    from activities.gitops.changes import HANDLE_OBJECTS
    from incidents.actions import PlannedAction, RollbackAction, WaitVerifyAction
    from incidents.gitops import GitOpsRemediation, ObjectRef, RevertLanded, RevertPreview
    from incidents.models import IncidentStateName, NotifyEvent
    from incidents.remediation import RemediationRequest
    from workflows.paging import cause_of
    from workflows.retries import SHORT_RETRY
    from workflows.state import IncidentFailure, IncidentState, TimelineKind
    from workflows.verify import eval_target, verify_by_eval

HANDSHAKE_PATCH = "gitops-handshake"
GIT_TIMEOUT = timedelta(minutes=3)
KUBE_TIMEOUT = timedelta(seconds=30)
# How often the tracked branch is read while a revert waits to be merged: soon, then less often.
LANDED_POLL_FIRST = timedelta(seconds=5)
LANDED_POLL_MAX = timedelta(seconds=60)
RECONCILE_TIMEOUT_S = 300.0
# Without a wait_verify step in the runbook, how the symptom is checked once the reconciler applies again.
SYMPTOM_RECHECK = WaitVerifyAction(duration_s=30, timeout_s=120)
DIFF_IN_PAGE = 3000
ONCE = RetryPolicy(maximum_attempts=1)


class IncidentFlow(Protocol):
    """What the handshake uses of the incident workflow (workflows/incident.py)."""

    state: IncidentState

    def _log(
        self, kind: TimelineKind, step: str, message: str, data: dict[str, Any] | None = None
    ) -> None: ...

    def _record(self, action: str, mode: Any, outcome: Any, **details: Any) -> None: ...

    def _move_to(self, name: IncidentStateName) -> None: ...

    async def _notify(
        self, event: NotifyEvent, detail: str | None = None, chat_channel: str | None = None
    ) -> None: ...

    async def _needs_human(self, reason: str, team: str | None = None) -> None: ...

    async def _apply(self, action: PlannedAction, request: RemediationRequest) -> bool: ...


def handles(action: PlannedAction, request: RemediationRequest | str) -> bool:
    """A rollback of a change the ledger found applied by Flux or Argo CD."""
    return (
        isinstance(action, RollbackAction)
        and not isinstance(request, str)
        and request.change is not None
        and request.change.gitops is not None
        and request.target_type in HANDLE_OBJECTS
    )


def _object(request: RemediationRequest) -> ObjectRef:
    api_version, kind = HANDLE_OBJECTS[request.target_type]
    return ObjectRef(api_version=api_version, kind=kind, name=request.name, namespace=request.namespace)


def _mode(policy: str) -> Any:
    return "push" if policy == "revert_push" else "branch"


def _fenced(diff: str) -> str:
    shown = diff if len(diff) <= DIFF_IN_PAGE else diff[:DIFF_IN_PAGE] + "\n... (diff cut; see the incident)"
    return f"\n```diff\n{shown}\n```" if shown else ""


async def _prepare(state: IncidentState, request: RemediationRequest, mode: Any | None) -> Prepared:
    return await workflow.execute_activity_method(
        GitOpsActivities.prepare,
        PrepareRequest(incident_id=state.input.incident_id, object=_object(request), mode=mode),
        start_to_close_timeout=GIT_TIMEOUT,
        retry_policy=SHORT_RETRY,
    )


def preview_of(prepared: Prepared, policy: Any) -> RevertPreview | None:
    """What the handshake would do, from a prepared rollback (None: not GitOps-managed after all)."""
    ownership, culprit = prepared.ownership, prepared.culprit
    if ownership is None or ownership.source is None or culprit is None:
        return None
    commit, preview = culprit.commit, prepared.preview
    tracked = culprit.source.branch
    if preview is None:
        target = "nothing written to Git"
    elif policy == "revert_push":
        target = f"{tracked} (direct push)"
    else:
        target = f"branch {preview.branch}, then a pull/merge request into {tracked}"
    return RevertPreview(
        policy=policy,
        reconciler=ownership.reconciler.describe(),
        repository=ownership.source.repo_url,
        tracked_branch=tracked,
        commit=commit.sha,
        commit_author=commit.author_name,
        commit_subject=commit.subject,
        target=target,
        revert_sha=preview.revert.sha if preview is not None and preview.revert is not None else None,
        diff=(preview.diff if preview is not None else "") or culprit.object_diff,
        message=preview.message if preview is not None else prepared.message,
    )


# --- shadow mode and approvals: show the exact commit and diff ---------------------------------


async def shadow(flow: IncidentFlow, action: PlannedAction) -> bool:
    """Shadow mode for a GitOps-managed rollback: record what would be suspended and pushed.
    False (nothing done, no command) for any other action."""
    state = flow.state
    request = state.remediation_for(action)
    if not handles(action, request) or not workflow.patched(HANDSHAKE_PATCH):
        return False
    assert isinstance(request, RemediationRequest) and isinstance(action, RollbackAction)
    prepared = await _prepare(state, request, _mode(action.gitops))
    preview = preview_of(prepared, action.gitops)
    if preview is None:
        return False
    target = f"{request.target_type}/{request.namespace}/{request.name}"
    flow._record(
        action.type,
        "shadow",
        "would_have",
        target=target,
        message=f"would {preview.describe()}",
        diff=preview.diff,
    )
    flow._log(
        "action",
        action.type,
        f"shadow: would {preview.describe()}",
        {"revert": preview.model_dump(mode="json")},
    )
    return True


async def approval_preview(flow: IncidentFlow, actions: list[PlannedAction]) -> RevertPreview | None:
    """For an approval request: the commit and diff the first GitOps-managed rollback would push."""
    state = flow.state
    for action in actions:
        if not isinstance(action, RollbackAction) or action.mode == "shadow":
            continue
        request = state.remediation_for(action)
        if not handles(action, request) or not workflow.patched(HANDSHAKE_PATCH):
            continue
        assert isinstance(request, RemediationRequest)
        return preview_of(await _prepare(state, request, _mode(action.gitops)), action.gitops)
    return None


# --- the rollback ------------------------------------------------------------------------------


async def rollback(flow: IncidentFlow, action: PlannedAction, request: RemediationRequest) -> bool:
    """Suspend the owner, roll back in the cluster, write the revert to Git (see the module docstring).
    True when the cluster was changed; raises IncidentFailure when a human must take over now."""
    assert isinstance(action, RollbackAction) and request.change is not None
    state = flow.state
    origin = request.change.gitops
    assert origin is not None
    target = f"{request.target_type}/{request.namespace}/{request.name}"
    progress = GitOpsRemediation(
        change_id=request.change.id,
        target=target,
        policy=action.gitops,
        merge_deadline_s=action.merge_deadline_s,
    )
    state.view.gitops = progress
    if action.gitops == "refuse":
        commit = origin.commit
        named = (
            f"commit {commit.sha[:12]} by {commit.author} ({commit.message})"
            if commit
            else "the culprit commit"
        )
        progress.stage, progress.message = "refused", "the runbook's gitops policy is refuse"
        flow._record(
            action.type, action.mode, "skipped", target=target, message="refused: gitops policy refuse"
        )
        raise IncidentFailure(
            f"{target} is applied by {origin.reconciler} from {origin.repository}; the runbook's gitops policy "
            f"is refuse, so backout changed nothing: revert {named} in Git"
        )

    prepared = await _prepare(state, request, None)
    if prepared.ownership is None:
        state.view.gitops = None
        flow._log("note", "gitops", f"{prepared.message}: rolling back in the cluster only")
        return await flow._apply(action, request)
    ownership, culprit = prepared.ownership, prepared.culprit
    progress.ownership, progress.culprit = ownership, culprit
    if culprit is None:
        progress.message = f"no commit to revert: {prepared.message}"
        flow._log("note", "gitops", f"{progress.message}; suspending and rolling back in the cluster only")
    else:
        flow._log(
            "decision",
            "gitops",
            prepared.message,
            {"commit": culprit.commit.sha, "manifest": culprit.manifest_path},
        )
        recorded = origin.commit.sha if origin.commit else None
        if recorded and recorded != culprit.commit.sha:
            flow._log(
                "note",
                "gitops",
                f"the ledger named {recorded[:12]}; Git now shows {culprit.commit.short_sha}",
            )

    reconciler = ownership.reconciler
    suspended = await workflow.execute_activity_method(
        GitOpsActivities.suspend,
        SuspendRequest(
            incident_id=state.input.incident_id, reconciler=reconciler, namespace=request.namespace
        ),
        # Includes waiting (SuspendRequest.settle_s) for a reconcile already running to finish.
        start_to_close_timeout=KUBE_TIMEOUT * 3,
        retry_policy=SHORT_RETRY,
    )
    if suspended.dry_run:
        return await _dry_run(flow, action, request, progress, suspended.message)
    flow._record(
        "suspend_reconciler",
        action.mode,
        suspended.outcome,
        target=reconciler.describe(),
        message=suspended.message,
    )
    flow._log("action", "suspend_reconciler", f"{suspended.outcome}: {suspended.message}")
    if suspended.outcome != "Successful" or suspended.record is None:
        progress.stage, progress.message = "failed", suspended.message
        raise IncidentFailure(
            f"could not suspend {reconciler.describe()} ({suspended.message}); nothing was rolled back, "
            "since the reconciler would undo it"
        )
    progress.suspension, progress.suspended_at, progress.stage = suspended.record, workflow.now(), "suspended"

    try:
        acted = await flow._apply(action, request)
    except IncidentFailure as failure:
        progress.stage, progress.message = "failed", str(failure)
        raise IncidentFailure(
            f"{failure}; {reconciler.describe()} stays suspended by this incident"
        ) from None
    if not acted:
        return False
    progress.rolled_back_at, progress.stage = workflow.now(), "rolled_back"
    if culprit is None or action.gitops == "suspend_only":
        progress.stage = "left_suspended"
        if action.gitops == "suspend_only":
            progress.message = "the runbook's gitops policy is suspend_only: a human reverts in Git"
        return True
    await _write_revert(flow, action, progress)
    return True


async def _dry_run(
    flow: IncidentFlow,
    action: RollbackAction,
    request: RemediationRequest,
    progress: GitOpsRemediation,
    said: str,
) -> bool:
    """kube dry run: the suspension was only validated; roll back dry, build the revert, push nothing."""
    progress.stage, progress.dry_run = "dry_run", True
    reconciler = progress.ownership.reconciler.describe() if progress.ownership else "the reconciler"
    flow._record(
        "suspend_reconciler", action.mode, "would_have", target=reconciler, message=said, dry_run=True
    )
    flow._log("action", "suspend_reconciler", said, {"dry_run": True})
    await flow._apply(action, request)
    if progress.culprit is None or action.gitops in ("suspend_only", "refuse"):
        return False
    written = await workflow.execute_activity_method(
        GitOpsActivities.write_revert,
        WriteRevertRequest(
            incident_id=flow.state.input.incident_id,
            culprit=progress.culprit,
            mode=_mode(action.gitops),
            dry_run=True,
        ),
        start_to_close_timeout=GIT_TIMEOUT,
        retry_policy=SHORT_RETRY,
    )
    progress.revert = written
    commit = progress.culprit.commit
    message = f"revert of {commit.short_sha} by {commit.author_name} ({commit.subject}): {written.message}"
    flow._record(
        "revert_commit", action.mode, "would_have", target=progress.culprit.source.repo_url,
        message=message, diff=written.diff, dry_run=True,
    )  # fmt: skip
    flow._log("action", "revert_commit", f"dry run: {message}", {"diff": written.diff, "dry_run": True})
    return False


async def _write_revert(flow: IncidentFlow, action: RollbackAction, progress: GitOpsRemediation) -> None:
    """The revert commit, pushed to the tracked branch or to a branch with a request. Failures are
    kept in `progress` for `finish` to page about; reconciliation stays suspended either way."""
    state, culprit = flow.state, progress.culprit
    assert culprit is not None
    incident = state.input.incident_id
    commit = culprit.commit
    try:
        written = await workflow.execute_activity_method(
            GitOpsActivities.write_revert,
            WriteRevertRequest(incident_id=incident, culprit=culprit, mode=_mode(action.gitops)),
            start_to_close_timeout=GIT_TIMEOUT,
            retry_policy=SHORT_RETRY,
        )
    except ActivityError as error:
        progress.stage, progress.message = "failed", f"the revert could not be written: {cause_of(error)}"
        flow._record(
            "revert_commit", action.mode, "Error", target=culprit.source.repo_url, message=progress.message
        )
        return
    progress.revert, progress.revert_written_at = written, workflow.now()
    where = f"{culprit.source.repo_url} {written.branch}"
    flow._record(
        "revert_commit",
        action.mode,
        written.outcome,
        target=where,
        message=written.message,
        diff=written.diff,
    )
    flow._log("action", "revert_commit", f"{written.outcome}: {written.message}", {"diff": written.diff})
    if written.outcome != "Successful":
        progress.stage, progress.message = "failed", written.message
        await flow._notify("update", detail=f"GitOps: {written.message}; {progress.target} stays rolled back and "
                           f"{_owner(progress)} stays suspended{_fenced(written.diff)}")  # fmt: skip
        return
    if action.gitops == "revert_pr" and written.revert is not None and not written.already_reverted:
        try:
            opened = await workflow.execute_activity_method(
                GitOpsActivities.open_change_request,
                OpenChangeRequestRequest(
                    incident_id=incident, culprit=culprit, revert=written.revert, summary=state.view.summary
                ),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=SHORT_RETRY,
            )
        except ActivityError as error:
            opened = None
            progress.stage, progress.message = (
                "failed",
                f"the pull/merge request was not opened: {cause_of(error)}",
            )
        if opened is not None:
            flow._record(
                "revert_request", action.mode, opened.outcome, target=written.branch, message=opened.message
            )
            if opened.change_request is None:
                progress.stage, progress.message = "failed", opened.message
            progress.change_request = opened.change_request
        if progress.stage == "failed":
            flow._log("error", "revert_request", progress.message)
            return
    progress.stage = "awaiting_merge"
    progress.deadline_at = workflow.now() + timedelta(seconds=progress.merge_deadline_s)
    request = progress.change_request
    where_now = (
        f"{request.url} ({written.branch} into {request.base_branch})" if request else f"{written.branch}"
    )
    detail = (
        f"GitOps: suspended {_owner(progress)}; reverting {commit.short_sha} by {commit.author_name} "
        f"({commit.subject}): {written.message}" + (f"; review and merge {where_now}" if request else "")
        + f". Reconciliation stays suspended until {culprit.source.branch} holds the revert "
        f"(deadline {_clock(progress.deadline_at)})."
    )  # fmt: skip
    await flow._notify("update", detail=detail)


def _owner(progress: GitOpsRemediation) -> str:
    return progress.ownership.reconciler.describe() if progress.ownership else "the reconciler"


def _clock(when: datetime) -> str:
    return when.strftime("%H:%M:%S UTC")


# --- the durable fix ---------------------------------------------------------------------------


async def finish(flow: IncidentFlow) -> None:
    """After recovery: wait for the revert to land, resume, verify the reconciled state (see the
    module docstring). Nothing to do (and no command) without a GitOps rollback in progress."""
    state = flow.state
    progress = state.view.gitops
    if progress is None or progress.stage not in ("left_suspended", "failed", "awaiting_merge"):
        return
    if state.view.state != "recovered":
        return  # a human already has the incident; the report says what stays suspended
    if progress.stage != "awaiting_merge":
        await _page_suspended(flow, progress, progress.message or "the revert was not written")
        return
    landed = await _wait_landed(flow, progress)
    if isinstance(landed, str):
        progress.stage, progress.message = "failed", landed
        await _page_suspended(flow, progress, landed)
        return
    progress.landed, progress.landed_at, progress.stage = landed, workflow.now(), "landed"
    flow._record("revert_landed", "auto", "Successful", target=landed.branch, message=landed.evidence)
    flow._log("action", "revert_landed", landed.evidence)
    if not await _resume_and_verify(flow, progress, landed):
        return
    problem = await _symptom_came_back(flow)
    if problem is not None:
        progress.message = problem
        await flow._needs_human(f"{problem} after {_owner(progress)} resumed and applied the revert")
        return
    assert progress.reconciled_at is not None and progress.culprit is not None
    took = (progress.reconciled_at - state.view.opened_at).total_seconds()
    progress.message = f"durable: {landed.branch} holds the revert and {_owner(progress)} applies it"
    flow._log("step", "durable_fix", f"{progress.message} ({took:.0f}s after the incident opened)")
    await flow._notify(
        "update",
        detail=f"Durable fix: {landed.evidence}; resumed {_owner(progress)}, which applied "
        f"{(landed.branch_tip or '')[:12]} with {progress.target} as it was before "
        f"{progress.culprit.commit.short_sha}. The symptom stayed gone.",
    )


async def _wait_landed(flow: IncidentFlow, progress: GitOpsRemediation) -> RevertLanded | str:
    """The tracked branch holding the revert, or why it does not by the deadline."""
    culprit, revert, deadline = progress.culprit, progress.revert, progress.deadline_at
    assert culprit is not None and revert is not None and deadline is not None
    # The check needs the commit and the object, not the (possibly long) diff.
    slim = RevertLandedRequest(
        culprit=culprit.model_copy(update={"object_diff": ""}),
        revert_sha=revert.revert.sha if revert.revert else None,
    )
    interval = LANDED_POLL_FIRST
    while True:
        landed = await workflow.execute_activity_method(
            GitOpsActivities.revert_landed, slim, start_to_close_timeout=GIT_TIMEOUT, retry_policy=SHORT_RETRY
        )
        request = progress.change_request
        if request is not None:
            state = await workflow.execute_activity_method(
                GitOpsActivities.change_request_state,
                ChangeRequestStateRequest(repo_url=culprit.source.repo_url, number=request.number),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=SHORT_RETRY,
            )
            progress.change_request = state.change_request or request
        if landed.landed:
            return landed
        if progress.change_request is not None and progress.change_request.state == "closed":
            return f"{progress.change_request.url} was closed without merging"
        left = deadline - workflow.now()
        if left <= timedelta(0):
            return f"the revert was not on {landed.branch} within {progress.merge_deadline_s}s ({landed.evidence})"
        await workflow.sleep(min(interval, left))
        interval = min(interval * 2, LANDED_POLL_MAX)


async def _resume_and_verify(flow: IncidentFlow, progress: GitOpsRemediation, landed: RevertLanded) -> bool:
    """Resume exactly what was suspended, then wait for the reconciler to apply the landed revision."""
    assert progress.suspension is not None and progress.ownership is not None
    owner = _owner(progress)
    try:
        resumed = await workflow.execute_activity_method(
            GitOpsActivities.resume,
            ResumeRequest(record=progress.suspension, namespace=progress.ownership.object.namespace),
            start_to_close_timeout=KUBE_TIMEOUT,
            retry_policy=SHORT_RETRY,
        )
    except ActivityError as error:
        await _page_suspended(flow, progress, f"resuming failed: {cause_of(error)}")
        return False
    flow._record("resume_reconciler", "auto", resumed.outcome, target=owner, message=resumed.message)
    flow._log("action", "resume_reconciler", f"{resumed.outcome}: {resumed.message}")
    if resumed.outcome != "Successful":
        progress.stage, progress.message = "failed", resumed.message
        await flow._needs_human(
            f"{landed.branch} holds the revert but {owner} was not resumed: {resumed.message}"
        )
        return False
    progress.resumed_at, progress.stage = workflow.now(), "resumed"
    try:
        reconciled = await workflow.execute_activity_method(
            GitOpsActivities.verify_reconciled,
            VerifyReconciledRequest(
                ownership=progress.ownership,
                expected_revision=landed.branch_tip,
                timeout_s=RECONCILE_TIMEOUT_S,
            ),
            start_to_close_timeout=timedelta(seconds=RECONCILE_TIMEOUT_S + 60),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=SHORT_RETRY,
        )
    except ActivityError as error:
        progress.stage, progress.message = (
            "failed",
            f"verifying the reconciled state failed: {cause_of(error)}",
        )
        await flow._needs_human(f"{owner} resumed; {progress.message}")
        return False
    progress.reconciled = reconciled
    flow._record("verify_reconciled", "auto", reconciled.outcome, target=owner, message=reconciled.message)
    flow._log("action", "verify_reconciled", f"{reconciled.outcome}: {reconciled.message}")
    if reconciled.outcome != "Successful":
        progress.stage, progress.message = "failed", reconciled.message
        await flow._needs_human(
            f"{owner} resumed after {landed.branch} got the revert, but the reconciled state is not shown good: "
            f"{reconciled.message}"
        )
        return False
    progress.reconciled_at, progress.stage = workflow.now(), "reconciled"
    return True


async def _symptom_came_back(flow: IncidentFlow) -> str | None:
    """With the reconciler applying again, for the runbook's wait_verify duration: an alert firing
    anew, or (with a golden set) the golden set regressed."""
    state = flow.state
    planned = state.view.decision.actions if state.view.decision else []
    step = next(
        (a for a in planned if isinstance(a, WaitVerifyAction) and a.mode != "shadow"), SYMPTOM_RECHECK
    )
    firing_before = {key for key, alert in state.alerts.items() if alert.status == "firing"}
    if state.alerts and step.duration_s > 0:
        try:
            await workflow.wait_condition(
                lambda: any(
                    alert.status == "firing" and key not in firing_before
                    for key, alert in state.alerts.items()
                ),
                timeout=timedelta(seconds=step.duration_s),
            )
            return "an alert fired again"
        except TimeoutError:
            pass
    manifest, endpoint = eval_target(state)
    if manifest:
        try:
            await verify_by_eval(state, step, manifest, endpoint)
        except IncidentFailure as failure:
            return str(failure)
    return None


async def _page_suspended(flow: IncidentFlow, progress: GitOpsRemediation, why: str) -> None:
    """Page the owners: what is suspended, where the revert is (branch, request) and its diff."""
    culprit = progress.culprit
    commit = (
        f"{culprit.commit.short_sha} by {culprit.commit.author_name} ({culprit.commit.subject})"
        if culprit
        else "?"
    )
    diff = (progress.revert.diff if progress.revert else "") or (culprit.object_diff if culprit else "")
    branch = culprit.source.branch if culprit else "the tracked branch"
    progress.stage = "failed" if progress.stage != "left_suspended" else progress.stage
    await flow._needs_human(
        f"GitOps durable fix not done: {why}. {progress.target} is rolled back in the cluster and "
        f"{_owner(progress)} stays suspended by this incident (never resumed onto the bad version). "
        f"To finish: get the revert of {commit} onto {branch} ({progress.describe_revert()}), then resume "
        f"{_owner(progress)}.{_fenced(diff)}"
    )
