"""IncidentWorkflow: one durable workflow per incident.

collect context -> attribute -> decide (runbook, in-workflow) -> optional approval ->
remediate -> verify -> notify -> close, then a cool-down that absorbs flapping alerts. A rollback
of a Flux/Argo CD-managed change is the GitOps handshake (workflows/gitops.py).
Deterministic: all I/O happens in activities; time comes from workflow.now(). What the incident
knows lives in one serializable IncidentState (workflows/state.py); this module is the flow.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.attribution import AttributionActivities
    from activities.context import ContextActivities
    from activities.kube.activities import KubeActivities
    from activities.runbooks import LoadRunbooksRequest, load_runbooks_activity
    from incidents.actions import (
        MUTATING_ACTIONS,
        ApprovalAction,
        EscalateAction,
        NotifyAction,
        PageAction,
        PlannedAction,
        RecordAction,
        WaitVerifyAction,
    )
    from incidents.bundle import AttributionOutput, IncidentBundle
    from incidents.models import (
        ApprovalDecision,
        ApprovalRequest,
        ApprovalScope,
        AttributedContext,
        ContextResult,
        Decision,
        IncidentInput,
        IncidentSignal,
        IncidentStateName,
        IncidentView,
        NotifyEvent,
        ViewPage,
    )
    from incidents.remediation import RemediationRequest, RemediationResult
    from runbooks.engine import decide
    from runbooks.models import Runbook
    from workflows import gitops
    from workflows.paging import cause_of, channels_named, notify_channels
    from workflows.retries import REMEDIATE_RETRY, SHORT_RETRY
    from workflows.state import IncidentFailure, IncidentState, TimelineKind, plan_digest
    from workflows.verify import golden_set_holds, verify_recovery


# workflow.patched ids: each guards a change of the command sequence (docs/ARCHITECTURE.md).
DRY_RUN_PATCH = "kube-dry-run-would-have"
APPROVAL_PLAN_PATCH = "approval-bound-to-plan"
CONTEXT_LOCAL_PATCH = "collect-context-local"
OPENED_AFTER_ACTION_PATCH = "opened-page-after-first-action"
LAGGING_ALERT_PATCH = "cooldown-lagging-alert"
REFIRE_BEFORE_COOLDOWN_PATCH = "refire-before-cooldown"
RUNBOOKS_WITH_CONTEXT_PATCH = "runbooks-with-context"
NEEDS_HUMAN_HOLDS_PATCH = "needs-human-holds-cooldown"
CONTEXT_WITH_ATTRIBUTION_PATCH = "context-with-attribution"
# An alert that fires during the cool-down while the golden set holds is asked about this many times.
MAX_LAGGING_ALERT_CHECKS = 3
# The opening page waits for the first cluster change (or anything else told) at most this long.
OPENED_PAGE_WAIT = timedelta(seconds=5)
# A plan that changes this often while waiting for approval is handed to a human instead.
MAX_REPLANS = 3


def _seen(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class PlanChanged(Exception):
    """The plan a pending approval covered changed: the request is withdrawn and the runbook's
    actions start again with the new decision."""


@workflow.defn(name="IncidentWorkflow")
class IncidentWorkflow:
    @workflow.init
    def __init__(self, params: IncidentInput) -> None:
        self.state = IncidentState.opened(params, workflow.now())
        self._opening: asyncio.Task[None] | None = None
        self._opening_released = False

    # --- Signals, queries, updates ------------------------------------------------------

    @workflow.signal(name="add_signal")
    def add_signal(self, signal: IncidentSignal) -> None:
        self.state.add_signal(workflow.now(), signal)

    @workflow.query(name="view")
    def view(self) -> IncidentView:
        return self.state.view

    @workflow.query(name="bundle")
    def bundle(self) -> IncidentBundle | None:
        return self.state.bundle

    @workflow.query(name="view_page")
    def view_page(self, page: ViewPage) -> IncidentView:
        return self.state.page(page)

    @workflow.query(name="approval_scope")
    def approval_scope(self) -> ApprovalScope:
        return self.state.approval_scope()

    @workflow.update(name="approve")
    async def approve(self, decision: ApprovalDecision) -> str:
        if self.state.approval_result is not None:
            # Two decisions validated in one workflow task: only the first one counts, on every replica.
            raise ApplicationError("this approval request was already decided", type="ApprovalRefused")
        self.state.approval_result = decision
        verdict = "approved" if decision.approve else "rejected"
        self._log("decision", "approval", f"{verdict} by {decision.user} via {decision.source}")
        return verdict

    @approve.validator
    def _validate_approval(self, decision: ApprovalDecision) -> None:
        pending = self.state.view.approval
        withdrawn = self.state.withdrawn_approvals.get(decision.request_id)
        if withdrawn is not None:
            current = f"; the pending request is {pending.request_id}" if pending is not None else ""
            raise ValueError(f"approval request {decision.request_id} is stale: {withdrawn}{current}")
        if pending is None:
            raise ValueError("no approval is pending for this incident")
        if decision.request_id != pending.request_id:
            raise ValueError(f"approval request {decision.request_id} is not the pending one")
        if self.state.approval_result is not None:
            raise ValueError("this approval request was already decided")
        if self.state.approval_timed_out or workflow.now() >= pending.expires_at:
            raise ValueError("this approval request has expired")
        if decision.plan_id is not None and decision.plan_id != pending.plan_id:
            raise ValueError(
                f"this decision is for plan {decision.plan_id}, the pending request is for plan "
                f"{pending.plan_id}: " + "; ".join(change.describe() for change in pending.plan)
            )
        if pending.approvers and not set(pending.approvers) & decision.names():
            raise ValueError(f"{decision.user} may not approve for this incident")

    # --- Main flow ------------------------------------------------------------------------

    @workflow.run
    async def run(self, params: IncidentInput) -> IncidentView:
        await workflow.wait_condition(lambda: self.state.signals > 0)
        self._log("step", "open", f"incident opened from {params.source}")
        if params.settle_s > 0:
            # Let the rest of an alert storm arrive before collecting context.
            await workflow.sleep(timedelta(seconds=params.settle_s))
        try:
            await self._respond(params)
        except IncidentFailure as failure:
            await self._needs_human(str(failure))
        except (ActivityError, ApplicationError) as error:
            await self._needs_human(f"step failed: {cause_of(error)}")
        await self._cooldown(params)
        self.state.view.closed_at = workflow.now()
        self._log("step", "close", f"incident closed in state {self.state.view.state}")
        return self.state.view

    async def _respond(self, params: IncidentInput) -> None:
        state = self.state
        self._move_to("collecting")
        runbooks: asyncio.Task[list[Runbook]] | None = None
        if workflow.patched(RUNBOOKS_WITH_CONTEXT_PATCH):
            # The runbooks do not depend on the context: loaded while it is collected, so one local
            # activity fewer runs after another on the way to the decision.
            runbooks = asyncio.create_task(self._load_runbooks(params))
            # Marked as seen: when the context fails first, the load's own error is not needed.
            runbooks.add_done_callback(_seen)
        attributed: AttributionOutput | None = None
        if workflow.patched(CONTEXT_WITH_ATTRIBUTION_PATCH):
            # One local activity collects and ranks: the decision no longer waits for a second one.
            both = await self._collect_and_attribute()
            context, attributed = both.context, both.attribution
        else:
            context = await self._collect_context()
        state.bundle = context.bundle
        for note in context.notes:
            self._log("note", "collect", note)
        self._log(
            "step",
            "collect",
            f"{len(context.bundle.changes)} candidate change(s), {len(context.bundle.metrics)} series",
        )

        self._move_to("attributing")
        if attributed is None:
            attribution = await self._attribute(context.bundle)
        else:
            attribution = attributed
            self._log_attribution(attribution)
        state.view.attribution = attribution

        self._move_to("deciding")
        decision = await self._decide(params, context, attribution, runbooks)
        state.view.decision = decision
        self._log(
            "decision",
            "runbook",
            f"runbook {decision.runbook or '(none matched)'} in {decision.mode} mode: "
            + (", ".join(f"{a.type}[{a.mode}]" for a in decision.actions) or "no actions"),
            {"path": [step.model_dump(mode="json") for step in decision.path]},
        )
        for action in decision.actions:
            if isinstance(action, PageAction):
                state.severity = action.severity
                state.team = action.team or state.team
        if state.all_alerts_resolved():
            # Never act on (or page for) an alert that resolved before the decision was taken.
            self._move_to("resolved_before_action")
            self._log("decision", "guard", "every alert resolved before the decision: nothing done")
            await self._notify("resolved_before_action")
            return
        if workflow.patched(OPENED_AFTER_ACTION_PATCH):
            # Nothing of the page (its report, its activities) is on the way to the first cluster change:
            # it goes out once that change is made, before anything else is told, or after
            # OPENED_PAGE_WAIT, whichever comes first. A rollback never waits on PagerDuty or Slack.
            self._opening = asyncio.create_task(self._open_after_first_action())
        else:
            # The page goes out while remediation starts: a rollback never waits on PagerDuty or Slack.
            self._opening = asyncio.create_task(self._notify("opened"))
        await self._execute(decision.actions)
        await gitops.finish(self)
        await self._opened()

    async def _collect_context(self) -> ContextResult:
        """The incident's bundle: changes, topology, evidence."""
        request = self.state.context_request(workflow.now())
        if workflow.patched(CONTEXT_LOCAL_PATCH):
            # A local activity: its I/O is bounded (the cluster reads, the evidence budget), and it
            # runs inside this workflow task instead of a round trip through the task queue.
            return await workflow.execute_local_activity_method(
                ContextActivities.collect_context,
                request,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=SHORT_RETRY,
            )
        return await workflow.execute_activity_method(
            ContextActivities.collect_context,
            request,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SHORT_RETRY,
        )

    async def _collect_and_attribute(self) -> AttributedContext:
        """The bundle and its ranking from one local activity (its I/O is the context's)."""
        return await workflow.execute_local_activity_method(
            ContextActivities.collect_and_attribute,
            self.state.context_request(workflow.now()),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SHORT_RETRY,
        )

    async def _attribute(self, bundle: IncidentBundle) -> AttributionOutput:
        # Local activities: CPU-only steps without a round trip through the task queue.
        attribution = await workflow.execute_local_activity_method(
            AttributionActivities.attribute_bundle,
            bundle,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SHORT_RETRY,
        )
        self._log_attribution(attribution)
        return attribution

    def _log_attribution(self, attribution: AttributionOutput) -> None:
        if attribution.ranking:
            top = attribution.ranking[0]
            self._log(
                "decision",
                "attribute",
                f"top culprit {top.change_id} p={top.probability:.2f}"
                + (f": {top.reasons[0]}" if top.reasons else ""),
                {"ranking": [r.model_dump() for r in attribution.ranking[:5]]},
            )
        else:
            self._log("decision", "attribute", "no candidate change in the window")

    async def _load_runbooks(self, params: IncidentInput) -> list[Runbook]:
        return await workflow.execute_local_activity(
            load_runbooks_activity,
            LoadRunbooksRequest(path=params.runbook_dir),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=SHORT_RETRY,
        )

    async def _decide(
        self,
        params: IncidentInput,
        context: ContextResult,
        attribution: AttributionOutput,
        loading: asyncio.Task[list[Runbook]] | None = None,
    ) -> Decision:
        """The runbooks' decision; `loading` is their load when it was started earlier."""
        runbooks = await (loading if loading is not None else self._load_runbooks(params))
        ctx = self.state.decision_context(
            workflow.now(),
            attribution,
            context.bundle.changes,
            context.recent_rollbacks,
            context.missing_evidence,
        )
        return decide(runbooks, ctx)

    # --- Executing the decision -----------------------------------------------------------

    async def _execute(self, actions: list[PlannedAction]) -> None:
        """The decision's actions; once more with the new decision each time the plan a pending
        approval covered changes (never more than MAX_REPLANS times)."""
        for _ in range(MAX_REPLANS):
            try:
                await self._run_actions(actions)
                return
            except PlanChanged:
                decision = self.state.view.decision
                actions = decision.actions if decision is not None else []
        await self._needs_human(
            f"the plan changed {MAX_REPLANS} times while waiting for approval; a human decides"
        )

    async def _run_actions(self, actions: list[PlannedAction]) -> None:
        state = self.state
        approved = False
        acted = False
        for action in actions:
            if action.type in MUTATING_ACTIONS and state.all_alerts_resolved():
                self._move_to("resolved_before_action")
                self._log("decision", "guard", "every alert resolved before acting: nothing changed")
                await self._notify("resolved_before_action")
                return
            if isinstance(action, ApprovalAction):
                if action.mode == "shadow":
                    self._record(action.type, "shadow", "would_have", message="would have asked for approval")
                    continue
                approved = await self._request_approval(action)
                if not approved:
                    return
                continue
            if action.type in MUTATING_ACTIONS:
                if action.mode == "shadow":
                    if not await gitops.shadow(self, action):
                        self._shadow(action)
                    continue
                if action.mode == "approve" and not approved:
                    approved = await self._request_approval(ApprovalAction(mode="approve"))
                    if not approved:
                        return
                acted = await self._mutate(action) or acted
            elif isinstance(action, WaitVerifyAction):
                if action.mode == "shadow" or not acted:
                    self._record(action.type, action.mode, "skipped", message="nothing was changed to verify")
                    continue
                await self._verify(action)
            elif isinstance(action, EscalateAction):
                await self._needs_human(action.reason or "runbook escalated to a human", team=action.team)
                return
            elif isinstance(action, PageAction | RecordAction | NotifyAction):
                note = (
                    (action.note if isinstance(action, RecordAction) else None)
                    or (action.message if isinstance(action, NotifyAction) else None)
                    or ""
                )
                if action.mode == "shadow" and action.type != "record":
                    self._record(
                        action.type, "shadow", "would_have", message=note or f"would have sent {action.type}"
                    )
                    continue
                self._record(action.type, action.mode, "Successful", message=note)
                if isinstance(action, NotifyAction):
                    await self._notify("update", detail=note or None, chat_channel=action.channel)
        if state.view.state not in ("recovered", "needs_human"):
            dry_runs = [record for record in state.view.actions if record.dry_run]
            if dry_runs:
                # Nothing was changed, so the symptom is still there: a human acts, told what backout would do.
                would = "; ".join(f"{r.action} {r.target}: {r.message}" for r in dry_runs)
                await self._needs_human(f"dry run, nothing was changed; backout would have done: {would}")
            elif any(record.outcome == "would_have" for record in state.view.actions):
                self._move_to("shadowed")
                await self._notify("shadowed")
            elif acted:
                # Remediated without an explicit verify step: recovery is not shown, so a human checks.
                await self._needs_human("remediation applied but the runbook did not verify recovery")
            elif any(record.action == "page" and record.mode != "shadow" for record in state.view.actions):
                notes = [r.message for r in state.view.actions if r.action == "record" and r.message]
                runbook = state.view.decision.runbook if state.view.decision else None
                await self._needs_human(notes[-1] if notes else f"runbook {runbook} pages a human")
            else:
                self._move_to("no_action")
                if state.view.decision is not None and state.view.decision.runbook is None:
                    await self._needs_human("no runbook matched this incident")

    async def _request_approval(self, action: ApprovalAction) -> bool:
        """Ask a human to approve the plan; True when approved (or on_timeout: proceed). Raises
        PlanChanged when the plan changed while waiting."""
        if not workflow.patched(APPROVAL_PLAN_PATCH):
            return await self._request_approval_unbound(action)
        state = self.state
        planned = state.view.decision.actions if state.view.decision else []
        revert = await gitops.approval_preview(self, planned)
        now = workflow.now()
        plan = state.approval_plan(planned)
        state.approval_result = None
        state.approval_timed_out = False
        state.approved_plan = None
        request = ApprovalRequest(
            request_id=str(workflow.uuid4()),
            approvers=action.approvers,
            expires_at=now + timedelta(seconds=action.timeout_s),
            proposed=[a.type for a in planned if a.type in MUTATING_ACTIONS],
            revert=revert,
            plan=plan,
            plan_id=plan_digest(plan),
        )
        state.view.approval = request
        self._log(
            "decision",
            "approval",
            f"approval {request.request_id} asked for plan {request.plan_id}: "
            + ("; ".join(change.describe() for change in plan) or "no cluster change"),
            {"plan": [change.model_dump(mode="json") for change in plan]},
        )
        self._move_to("awaiting_approval")
        await self._notify("approval_requested")
        if not await self._await_decision(request, timedelta(seconds=action.timeout_s)):
            state.approval_timed_out = True
            self._log("decision", "approval", f"no answer within {action.timeout_s}s: {action.on_timeout}")
            if action.on_timeout == "proceed":
                state.approved_plan = plan
                return True
            if action.on_timeout == "abort":
                self._move_to("no_action")
                return False
            await self._needs_human(f"approval not given within {action.timeout_s}s")
            return False
        return await self._decided()

    async def _await_decision(self, request: ApprovalRequest, timeout: timedelta) -> bool:
        """Wait for the decision (True) or the request's expiry (False). Meanwhile look again every
        approval_recheck_s, on every new signal and after an approval: a different plan withdraws
        the request (PlanChanged)."""
        state = self.state
        deadline = workflow.now() + timeout
        recheck = timedelta(seconds=max(state.input.approval_recheck_s, 1.0))
        while True:
            signals = state.signals
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                return state.approval_result is not None
            try:
                await workflow.wait_condition(
                    lambda seen=signals: state.approval_result is not None or state.signals != seen,  # type: ignore[misc]
                    timeout=min(remaining, recheck),
                )
            except TimeoutError:
                pass
            if workflow.now() >= deadline and state.approval_result is None:
                return False
            # Looked at again on every recheck, every new signal and once more after an approval:
            # what runs is the plan as it stands when it was approved.
            decided = state.approval_result
            if decided is not None and not decided.approve:
                return True
            await self._recheck_plan(request)
            if state.approval_result is not None:
                return True

    async def _recheck_plan(self, request: ApprovalRequest) -> None:
        """Collect, attribute and decide again; raise PlanChanged when the plan is not the one asked.
        A look that could not see the cluster changes nothing: an outage is not a new plan."""
        state = self.state
        try:
            context = await self._collect_context()
            if context.cluster_error is not None:
                self._log(
                    "note", "approval", f"could not look again ({context.cluster_error}); the plan stands"
                )
                return
            attribution = await workflow.execute_local_activity_method(
                AttributionActivities.attribute_bundle,
                context.bundle,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=SHORT_RETRY,
            )
            decision = await self._decide(state.input, context, attribution)
        except ActivityError as error:
            self._log("note", "approval", f"could not look again ({cause_of(error)}); the plan stands")
            return
        previous = (state.bundle, state.view.attribution, state.view.decision)
        state.bundle, state.view.attribution, state.view.decision = context.bundle, attribution, decision
        plan = state.approval_plan(decision.actions)
        if plan_digest(plan) == request.plan_id:
            return
        was = "; ".join(change.describe() for change in request.plan) or "no cluster change"
        now = "; ".join(change.describe() for change in plan) or "no cluster change"
        reason = f"the plan changed from [{was}] to [{now}]"
        if previous[1] is not None and attribution.ranking and previous[1].ranking:
            before, after = previous[1].ranking[0].change_id, attribution.ranking[0].change_id
            if before != after:
                reason += f" (top culprit {before} -> {after})"
        state.withdrawn_approvals[request.request_id] = reason
        late = state.approval_result
        state.approval_result = None
        state.view.approval = None
        self._log(
            "decision",
            "approval",
            f"approval {request.request_id} withdrawn: {reason}"
            + (f"; the decision of {late.user} was for the old plan" if late is not None else ""),
            {"plan": [change.model_dump(mode="json") for change in plan]},
        )
        self._log(
            "decision",
            "runbook",
            f"runbook {decision.runbook or '(none matched)'} in {decision.mode} mode: "
            + (", ".join(f"{a.type}[{a.mode}]" for a in decision.actions) or "no actions"),
        )
        await self._notify("update", detail=f"approval withdrawn: {reason}; asking again")
        raise PlanChanged(reason)

    async def _decided(self) -> bool:
        state = self.state
        result = state.approval_result
        assert result is not None
        if result.approve:
            state.approved_plan = state.view.approval.plan if state.view.approval else None
            await self._notify("approved", detail=f"approved by {result.user}")
            return True
        await self._needs_human(
            f"remediation rejected by {result.user}" + (f": {result.reason}" if result.reason else "")
        )
        return False

    async def _request_approval_unbound(self, action: ApprovalAction) -> bool:
        """The approval of incidents started before approvals were bound to their plan (replays)."""
        state = self.state
        planned = state.view.decision.actions if state.view.decision else []
        now = workflow.now()
        proposed = [a.type for a in planned]
        state.approval_result = None
        state.approval_timed_out = False
        state.view.approval = ApprovalRequest(
            request_id=str(workflow.uuid4()),
            approvers=action.approvers,
            expires_at=now + timedelta(seconds=action.timeout_s),
            proposed=[p for p in proposed if p in MUTATING_ACTIONS],
        )
        self._move_to("awaiting_approval")
        await self._notify("approval_requested")
        try:
            await workflow.wait_condition(
                lambda: state.approval_result is not None, timeout=timedelta(seconds=action.timeout_s)
            )
        except TimeoutError:
            state.approval_timed_out = True
            self._log("decision", "approval", f"no answer within {action.timeout_s}s: {action.on_timeout}")
            if action.on_timeout == "proceed":
                return True
            if action.on_timeout == "abort":
                self._move_to("no_action")
                return False
            await self._needs_human(f"approval not given within {action.timeout_s}s")
            return False
        result = state.approval_result
        assert result is not None
        if result.approve:
            await self._notify("approved", detail=f"approved by {result.user}")
            return True
        await self._needs_human(
            f"remediation rejected by {result.user}" + (f": {result.reason}" if result.reason else "")
        )
        return False

    def _shadow(self, action: PlannedAction) -> None:
        target = self.state.describe_target(action)
        self._record(
            action.type,
            "shadow",
            "would_have",
            target=target,
            message=f"would have run {action.type} on {target}",
        )
        self._log("action", action.type, f"shadow: would have run {action.type} on {target}")

    async def _mutate(self, action: PlannedAction) -> bool:
        """Run one mutating action; True when it changed the cluster (False: a dry run)."""
        request = self.state.remediation_for(action)
        if isinstance(request, str):
            raise IncidentFailure(request)
        if not self.state.in_approved_plan(request):
            raise IncidentFailure(
                f"{action.type} of {request.target_type}/{request.namespace}/{request.name} is not in the "
                "plan that was approved; nothing was changed"
            )
        self._move_to("remediating")
        if gitops.handles(action, request) and workflow.patched(gitops.HANDSHAKE_PATCH):
            return await gitops.rollback(self, action, request)
        return await self._apply(action, request)

    async def _apply(self, action: PlannedAction, request: RemediationRequest) -> bool:
        """The remediation on the cluster; True when it changed it (False: a dry run)."""
        result = await workflow.execute_activity_method(
            KubeActivities.remediate,
            request,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=REMEDIATE_RETRY,
        )
        self._opening_released = True
        if result.dry_run and result.outcome == "Successful" and workflow.patched(DRY_RUN_PATCH):
            await self._would_have(action, result)
            return False
        self._record(
            action.type,
            action.mode,
            result.outcome,
            target=result.target,
            message=result.message,
            diff=result.diff,
        )
        self._log(
            "action",
            action.type,
            f"{result.outcome}: {result.message or result.target}",
            {"diff": result.diff},
        )
        if result.outcome != "Successful":
            raise IncidentFailure(
                f"{action.type} of {result.target} {result.outcome.lower()}: {result.message}"
            )
        self.state.last_remediation = request
        if request.operation == "rollback":
            await self._notify("rollback_performed", detail=result.message)
        await self._notify("update", detail=f"{action.type} {result.target}: {result.message}")
        return True

    async def _would_have(self, action: PlannedAction, result: RemediationResult) -> None:
        """A server-side dry run (kube_dry_run): the cluster validated the write and kept nothing.
        Recorded and told as what backout would have done, with the diff; never as applied."""
        self._record(
            action.type,
            action.mode,
            "would_have",
            target=result.target,
            message=result.message,
            diff=result.diff,
            dry_run=True,
        )
        self._log(
            "action",
            action.type,
            f"dry run: {result.message or result.target} (validated by the cluster, nothing changed)",
            {"diff": result.diff, "dry_run": True},
        )
        detail = f"dry run: {action.type} {result.target}: {result.message}; nothing was changed"
        if result.diff:
            detail += f"\n```\n{result.diff}\n```"
        await self._notify("update", detail=detail)

    async def _verify(self, action: WaitVerifyAction) -> None:
        self._move_to("verifying")
        await verify_recovery(self.state, action)
        self._move_to("recovered")
        self._log("step", "verify", "service recovered")
        await self._notify("recovered")

    async def _cooldown(self, params: IncidentInput) -> None:
        """Stay open a while: a re-fire now is the same incident, never a second rollback."""
        if params.cooldown_s <= 0:
            return
        state = self.state
        state.in_cooldown = True
        if state.back_before_cooldown and workflow.patched(REFIRE_BEFORE_COOLDOWN_PATCH):
            # It came back while the runbook's last steps or pages ran: the cool-down begins with it.
            state.refired = True
            state.refired_by |= state.back_before_cooldown
        ends = workflow.now() + timedelta(seconds=params.cooldown_s)
        wait = timedelta(seconds=params.cooldown_s)
        lagging: list[str] = []
        while True:
            try:
                await workflow.wait_condition(lambda: state.refired, timeout=wait)
            except TimeoutError:
                break
            if state.view.state == "needs_human":
                self._log("note", "cooldown", "the symptom was reported again; a human is already paged")
                await self._hold_for_human(ends)
                return
            if await self._lagging_alert(lagging):
                state.refired = False
                state.refired_by.clear()
                wait = max(ends - workflow.now(), timedelta(seconds=1))
                continue
            await self._needs_human(
                "the symptom came back after the incident was handled (an alert fired again or the eval regressed); not acting twice"
            )
            await self._hold_for_human(ends)
            return
        firing = state.firing_alert_names()
        still_firing = [name for name in lagging if name in firing]
        if still_firing:
            await self._needs_human(
                f"{', '.join(still_firing)} fired again after the recovery and still firing at the end of the "
                "cool-down although the golden set holds: the alert and the golden set disagree; not acting twice"
            )

    async def _hold_for_human(self, ends: datetime) -> None:
        """A human has the incident: it stays open until the cool-down ends, and whatever arrives
        meanwhile (the rest of a storm, a re-fire) joins it. Closing at once made the storm's next
        notification open another run, which settled, decided and paged again, over and over.
        One timer, however many signals arrive: a signal only merges its alerts."""
        if not workflow.patched(NEEDS_HUMAN_HOLDS_PATCH):
            return
        left = ends - workflow.now()
        if left > timedelta(0):
            await workflow.sleep(left)

    async def _lagging_alert(self, lagging: list[str]) -> bool:
        """An alert that fires after a recovery the golden set verified, while the golden set still
        holds, is a slower window catching up (an average over minutes still holding the bad ones),
        not the symptom back: the incident keeps cooling down and escalates if it is still firing
        at the end. An eval regression, or an incident without a golden set, is the symptom back."""
        state = self.state
        if state.refired_by != {"alert"} or len(lagging) >= MAX_LAGGING_ALERT_CHECKS:
            return False
        if state.view.state != "recovered" or not workflow.patched(LAGGING_ALERT_PATCH):
            return False
        verdict = await golden_set_holds(state)
        if verdict is None:
            return False
        firing = sorted(state.firing_alert_names())
        lagging.extend(name for name in firing if name not in lagging)
        self._log(
            "note",
            "cooldown",
            f"{', '.join(firing) or 'an alert'} fired after the verified recovery, but the golden set holds "
            f"({verdict}): a lagging alert window; still cooling down",
        )
        return True

    # --- Telling people ---------------------------------------------------------------------

    async def _needs_human(self, reason: str, team: str | None = None) -> None:
        self._move_to("needs_human")
        self._log("error", "escalate", reason)
        if team:
            self.state.team = team
        await self._notify("needs_human", detail=reason)

    async def _open_after_first_action(self) -> None:
        try:
            await workflow.wait_condition(lambda: self._opening_released, timeout=OPENED_PAGE_WAIT)
        except TimeoutError:
            pass
        await self._notify("opened")

    async def _opened(self) -> None:
        """Wait for the opening notification, so later ones reply in its chat thread."""
        self._opening_released = True
        if self._opening is not None:
            opening, self._opening = self._opening, None
            await opening

    async def _notify(
        self, event: NotifyEvent, detail: str | None = None, chat_channel: str | None = None
    ) -> None:
        if event != "opened":
            await self._opened()
        state = self.state
        channels = channels_named(state.input.channels)
        decision = state.view.decision
        if (
            decision is not None
            and decision.runbook is not None
            and decision.mode == "shadow"
            and event != "needs_human"
        ):
            # A runbook on trial in shadow mode reports to chat only; it never pages anyone.
            channels = [channel for channel in channels if not channel.pages]
        outcome = await notify_channels(channels, event, state.report(), state.threads, detail, chat_channel)
        state.threads = outcome.threads
        for problem in outcome.errors:
            self._log("error", "notify", f"not delivered: {problem}")
        titles = {channel.name: channel.title for channel in channels}
        for name, result in outcome.results.items():
            self.state.delivered(workflow.now(), name, titles.get(name, name), event, result)

    # --- Bookkeeping, stamped with workflow time --------------------------------------------

    def _log(self, kind: TimelineKind, step: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.state.log(workflow.now(), kind, step, message, data)

    def _record(self, action: str, mode: Any, outcome: Any, **details: Any) -> None:
        self.state.record(workflow.now(), action, mode, outcome, **details)

    def _move_to(self, name: IncidentStateName) -> None:
        if self.state.move_to(workflow.now(), name):
            workflow.upsert_memo({"state": name})
