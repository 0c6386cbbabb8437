"""IncidentWorkflow: one durable workflow per incident.

collect context -> attribute -> decide (runbook, in-workflow) -> optional approval ->
remediate -> verify -> notify -> close, then a cool-down that absorbs flapping alerts.
Deterministic: all I/O happens in activities; time comes from workflow.now().
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
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
    from incidents.bundle import AttributionOutput, Change, IncidentBundle
    from incidents.models import (
        Alert,
        ApprovalDecision,
        ApprovalRequest,
        ContextRequest,
        ContextResult,
        Decision,
        DecisionContext,
        IncidentInput,
        IncidentSignal,
        IncidentView,
    )
    from runbooks.engine import decide
    from workflows.incident_record import SHORT_RETRY, IncidentFailure
    from workflows.incident_verify import RecoveryChecks
    from workflows.paging import cause_of

# Long enough to ride out an apiserver restart (about 45 s of retries), still bounded.
REMEDIATE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=8,
)


@workflow.defn(name="IncidentWorkflow")
class IncidentWorkflow(RecoveryChecks):
    @workflow.init
    def __init__(self, params: IncidentInput) -> None:
        super().__init__(params)

    # --- Signals, queries, updates ------------------------------------------------------

    @workflow.signal(name="add_signal")
    def add_signal(self, signal: IncidentSignal) -> None:
        self._signals += 1
        if signal.eval is not None:
            first = self._view.eval is None
            if self._in_cooldown and signal.eval.regression:
                self._refired = True
            self._view.eval = signal.eval
            self._log(
                "signal",
                "eval",
                f"eval {signal.eval.manifest}: {signal.eval.metric} {signal.eval.baseline:.3f} -> "
                f"{signal.eval.candidate:.3f}" + ("" if first else " (repeat)"),
            )
        for alert in signal.alerts:
            self._merge_alert(alert)

    def _merge_alert(self, alert: Alert) -> None:
        known = self._alerts.get(alert.fingerprint)
        if known is not None and known.status == alert.status:
            self._duplicates += 1
            return
        self._alerts[alert.fingerprint] = alert
        name = alert.labels.get("alertname", alert.fingerprint)
        message = (
            f"alert {name} {alert.status}"
            if known is None
            else f"alert {name} {known.status} -> {alert.status}"
        )
        if alert.status == "firing" and self._in_cooldown:
            # Firing again (or newly) after the incident was handled: the symptom is back.
            self._refired = True
        self._log("signal", "alert", message, {"fingerprint": alert.fingerprint, "labels": alert.labels})
        self._view.alerts = list(self._alerts.values())

    @workflow.query(name="view")
    def view(self) -> IncidentView:
        return self._view

    @workflow.query(name="bundle")
    def bundle(self) -> IncidentBundle | None:
        return self._bundle

    @workflow.update(name="approve")
    async def approve(self, decision: ApprovalDecision) -> str:
        self._approval_result = decision
        verdict = "approved" if decision.approve else "rejected"
        self._log("decision", "approval", f"{verdict} by {decision.user} via {decision.source}")
        return verdict

    @approve.validator
    def _validate_approval(self, decision: ApprovalDecision) -> None:
        pending = self._view.approval
        if pending is None:
            raise ValueError("no approval is pending for this incident")
        if decision.request_id != pending.request_id:
            raise ValueError(f"approval request {decision.request_id} is not the pending one")
        if self._approval_result is not None:
            raise ValueError("this approval request was already decided")
        if self._approval_timed_out or workflow.now() >= pending.expires_at:
            raise ValueError("this approval request has expired")
        if pending.approvers and decision.user not in pending.approvers:
            raise ValueError(f"{decision.user} may not approve for this incident")

    # --- Main flow ------------------------------------------------------------------------

    @workflow.run
    async def run(self, params: IncidentInput) -> IncidentView:
        await workflow.wait_condition(lambda: self._signals > 0)
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
        self._view.closed_at = workflow.now()
        self._log("step", "close", f"incident closed in state {self._view.state}")
        return self._view

    async def _respond(self, params: IncidentInput) -> None:
        self._set_state("collecting")
        context = await workflow.execute_activity_method(
            ContextActivities.collect_context,
            self._context_request(params),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SHORT_RETRY,
        )
        self._bundle = context.bundle
        for note in context.notes:
            self._log("note", "collect", note)
        self._log(
            "step",
            "collect",
            f"{len(context.bundle.changes)} candidate change(s), {len(context.bundle.metrics)} series",
        )

        self._set_state("attributing")
        attribution = await self._attribute(context.bundle)
        self._view.attribution = attribution

        self._set_state("deciding")
        decision = await self._decide(params, context, attribution)
        self._view.decision = decision
        self._log(
            "decision",
            "runbook",
            f"runbook {decision.runbook or '(none matched)'} in {decision.mode} mode: "
            + (", ".join(f"{a.type}[{a.mode}]" for a in decision.actions) or "no actions"),
            {"path": [step.model_dump(mode="json") for step in decision.path]},
        )
        for action in decision.actions:
            if isinstance(action, PageAction):
                self._severity = action.severity
                self._team = action.team or self._team
        if self._all_alerts_resolved():
            # Never act on (or page for) an alert that resolved before the decision was taken.
            self._set_state("resolved_before_action")
            self._log("decision", "guard", "every alert resolved before the decision: nothing done")
            await self._notify("resolved_before_action")
            return
        # The page goes out while remediation starts: a rollback never waits on PagerDuty or Slack.
        self._opening = asyncio.create_task(self._notify("opened"))
        await self._execute(decision.actions)
        await self._opened()

    async def _attribute(self, bundle: IncidentBundle) -> AttributionOutput:
        # Local activities: CPU-only steps without a round trip through the task queue.
        attribution = await workflow.execute_local_activity_method(
            AttributionActivities.attribute_bundle,
            bundle,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SHORT_RETRY,
        )
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
        return attribution

    async def _decide(
        self, params: IncidentInput, context: ContextResult, attribution: AttributionOutput
    ) -> Decision:
        runbooks = await workflow.execute_local_activity(
            load_runbooks_activity,
            LoadRunbooksRequest(path=params.runbook_dir),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=SHORT_RETRY,
        )
        labels = self._labels()
        ctx = DecisionContext(
            incident_id=params.incident_id,
            service=params.key.service,
            namespace=params.key.namespace,
            source=params.source,
            severity=labels.get("severity"),
            alertnames=sorted(
                {a.labels["alertname"] for a in self._alerts.values() if "alertname" in a.labels}
            ),
            labels=labels,
            attribution=attribution,
            changes=context.bundle.changes,
            eval=self._view.eval,
            now=workflow.now(),
            recent_rollbacks=context.recent_rollbacks,
        )
        return decide(runbooks, ctx)

    # --- Executing the decision -----------------------------------------------------------

    async def _execute(self, actions: list[PlannedAction]) -> None:
        approved = False
        acted = False
        for action in actions:
            if action.type in MUTATING_ACTIONS and self._all_alerts_resolved():
                self._set_state("resolved_before_action")
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
                    await self._shadow(action)
                    continue
                if action.mode == "approve" and not approved:
                    approved = await self._request_approval(ApprovalAction(mode="approve"))
                    if not approved:
                        return
                await self._mutate(action)
                acted = True
            elif isinstance(action, WaitVerifyAction):
                if action.mode == "shadow" or not acted:
                    self._record(action.type, action.mode, "skipped", message="nothing was changed to verify")
                    continue
                await self._verify(action)
            elif isinstance(action, EscalateAction):
                await self._needs_human(action.reason or "runbook escalated to a human", team=action.team)
                return
            elif isinstance(action, PageAction | RecordAction) or action.type == "notify":
                note = getattr(action, "note", None) or getattr(action, "message", None) or ""
                if action.mode == "shadow" and action.type != "record":
                    self._record(
                        action.type, "shadow", "would_have", message=note or f"would have sent {action.type}"
                    )
                    continue
                self._record(action.type, action.mode, "Successful", message=note)
                if isinstance(action, NotifyAction):
                    await self._notify("update", detail=note or None, chat_channel=action.channel)
        if self._view.state not in ("recovered", "needs_human"):
            if any(record.outcome == "would_have" for record in self._view.actions):
                self._set_state("shadowed")
                await self._notify("shadowed")
            elif acted:
                # Remediated without an explicit verify step: recovery is not shown, so a human checks.
                await self._needs_human("remediation applied but the runbook did not verify recovery")
            elif any(record.action == "page" and record.mode != "shadow" for record in self._view.actions):
                notes = [r.message for r in self._view.actions if r.action == "record" and r.message]
                runbook = self._view.decision.runbook if self._view.decision else None
                await self._needs_human(notes[-1] if notes else f"runbook {runbook} pages a human")
            else:
                self._set_state("no_action")
                if self._view.decision is not None and self._view.decision.runbook is None:
                    await self._needs_human("no runbook matched this incident")

    async def _request_approval(self, action: ApprovalAction) -> bool:
        now = workflow.now()
        proposed = [a.type for a in (self._view.decision.actions if self._view.decision else [])]
        self._approval_result = None
        self._approval_timed_out = False
        self._view.approval = ApprovalRequest(
            request_id=str(workflow.uuid4()),
            approvers=action.approvers,
            expires_at=now + timedelta(seconds=action.timeout_s),
            proposed=[p for p in proposed if p in MUTATING_ACTIONS],
        )
        self._set_state("awaiting_approval")
        await self._notify("approval_requested")
        try:
            await workflow.wait_condition(
                lambda: self._approval_result is not None, timeout=timedelta(seconds=action.timeout_s)
            )
        except TimeoutError:
            self._approval_timed_out = True
            self._log("decision", "approval", f"no answer within {action.timeout_s}s: {action.on_timeout}")
            if action.on_timeout == "proceed":
                return True
            if action.on_timeout == "abort":
                self._set_state("no_action")
                return False
            await self._needs_human(f"approval not given within {action.timeout_s}s")
            return False
        result = self._approval_result
        assert result is not None
        if result.approve:
            await self._notify("approved", detail=f"approved by {result.user}")
            return True
        await self._needs_human(
            f"remediation rejected by {result.user}" + (f": {result.reason}" if result.reason else "")
        )
        return False

    async def _shadow(self, action: PlannedAction) -> None:
        target = self._describe_target(action)
        self._record(
            action.type,
            "shadow",
            "would_have",
            target=target,
            message=f"would have run {action.type} on {target}",
        )
        self._log("action", action.type, f"shadow: would have run {action.type} on {target}")

    async def _mutate(self, action: PlannedAction) -> None:
        change = self._change_for(action)
        request = action.request(change, self._input.incident_id, self._input.key.namespace)
        if isinstance(request, str):
            raise IncidentFailure(request)
        self._set_state("remediating")
        result = await workflow.execute_activity_method(
            KubeActivities.remediate,
            request,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=REMEDIATE_RETRY,
        )
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
        self._last_remediation = request
        if request.operation == "rollback":
            await self._notify("rollback_performed", detail=result.message)
        await self._notify("update", detail=f"{action.type} {result.target}: {result.message}")

    async def _cooldown(self, params: IncidentInput) -> None:
        """Stay open a while: a re-fire now is the same incident, never a second rollback."""
        if params.cooldown_s <= 0:
            return
        self._in_cooldown = True
        try:
            await workflow.wait_condition(lambda: self._refired, timeout=timedelta(seconds=params.cooldown_s))
        except TimeoutError:
            return
        if self._view.state == "needs_human":
            self._log("note", "cooldown", "the symptom was reported again; a human is already paged")
            return
        await self._needs_human(
            "the symptom came back after the incident was handled (an alert fired again or the eval regressed); not acting twice"
        )

    # --- Helpers --------------------------------------------------------------------------

    def _context_request(self, params: IncidentInput) -> ContextRequest:
        starts = [a.starts_at for a in self._alerts.values()]
        detected = (
            min(starts) if starts else (self._view.eval.observed_at if self._view.eval else workflow.now())
        )
        return ContextRequest(
            incident_id=params.incident_id,
            service=params.key.service,
            namespace=params.key.namespace,
            source=params.source,
            detected_at=detected,
            labels=self._labels(),
            eval=self._view.eval,
            lookback_s=params.lookback_s,
            alerts=list(self._alerts.values()),
        )

    def _change_for(self, action: PlannedAction) -> Change | None:
        changes = self._bundle.changes if self._bundle else []
        wanted = action.names_change()
        if wanted is None and self._view.attribution and self._view.attribution.ranking:
            wanted = self._view.attribution.ranking[0].change_id
        return next((c for c in changes if c.id == wanted), None)

    def _describe_target(self, action: PlannedAction) -> str:
        change = self._change_for(action)
        request = action.request(change, self._input.incident_id, self._input.key.namespace)
        if isinstance(request, str):
            return request
        return f"{request.target_type}/{request.name}" + (f" (change {change.id})" if change else "")
