"""What an incident knows and has done: one serializable model, and the functions that read and
change it.

Pure: no clock (every change takes `now`, which the workflow reads from workflow.now()), no I/O,
no Temporal calls, so it is tested as plain data and replays the same. The workflow
(workflows/incident.py) owns the flow; this module owns the bookkeeping.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from config.redact import redact_text
from incidents.actions import MUTATING_ACTIONS, PlannedAction, Severity
from incidents.bundle import AttributionOutput, Change, IncidentBundle
from incidents.limits import (
    MAX_DELIVERIES,
    MAX_DIFF_CHARS,
    MAX_INCIDENT_ALERTS,
    MAX_MESSAGE_CHARS,
    MAX_TIMELINE_ENTRIES,
    MAX_TRACKED_ALERTS,
    bounded_alert,
    bounded_fingerprint,
    clip,
)
from incidents.models import (
    TERMINAL_STATES,
    ActionRecord,
    Alert,
    ApprovalDecision,
    ApprovalScope,
    ChatThread,
    ContextRequest,
    DecisionContext,
    DeliveryRecord,
    IncidentInput,
    IncidentReport,
    IncidentSignal,
    IncidentStateName,
    IncidentView,
    NotifyEvent,
    NotifyResult,
    PlannedChange,
    TimelineEntry,
    ViewPage,
)
from incidents.remediation import RemediationRequest
from workflows.summary import render_report

TimelineKind = Literal["step", "decision", "action", "signal", "error", "note"]


class IncidentFailure(Exception):
    """A step failed in a way a human must hear about."""


def plan_digest(plan: list[PlannedChange]) -> str:
    """A short stable id of a plan: equal plans, equal ids (sha256 of its JSON)."""
    text = json.dumps([item.model_dump(mode="json") for item in plan], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class IncidentState(BaseModel):
    """Everything one incident holds between steps; `view` is what the API shows."""

    input: IncidentInput
    view: IncidentView
    alerts: dict[str, Alert] = Field(default_factory=dict)
    signals: int = 0
    duplicates: int = 0
    bundle: IncidentBundle | None = None
    threads: dict[str, ChatThread] = Field(default_factory=dict)  # chat thread per paging channel
    team: str | None = None
    severity: Severity = "critical"
    approval_result: ApprovalDecision | None = None
    approval_timed_out: bool = False
    # Requests withdrawn because the plan changed (request id -> why): a late decision on one is
    # refused with the reason. The plan the last approval covered: remediation runs only that.
    withdrawn_approvals: dict[str, str] = Field(default_factory=dict)
    approved_plan: list[PlannedChange] | None = None
    in_cooldown: bool = False
    refired: bool = False
    # What reported the symptom again during the cool-down: "alert" and/or "eval".
    refired_by: set[str] = Field(default_factory=set)
    # The same, reported after the incident was handled but before its cool-down began (the last
    # steps of the runbook, its pages): the cool-down starts with it (REFIRE_BEFORE_COOLDOWN_PATCH).
    back_before_cooldown: set[str] = Field(default_factory=set)
    last_remediation: RemediationRequest | None = None
    # Past MAX_INCIDENT_ALERTS alerts the incident keeps only each one's state (by fingerprint),
    # and past MAX_TRACKED_ALERTS only a count (incidents/limits.py).
    untracked_states: dict[str, str] = Field(default_factory=dict)
    alerts_not_kept: int = 0
    folded_signals: int = 0

    @classmethod
    def opened(cls, params: IncidentInput, now: datetime) -> IncidentState:
        view = IncidentView(
            id=params.incident_id,
            state="open",
            source=params.source,
            service=params.key.service,
            namespace=params.key.namespace,
            group=params.key.group,
            opened_at=now,
            updated_at=now,
        )
        return cls(input=params, view=view)

    # --- the timeline and the action log -------------------------------------------------------

    def log(
        self, now: datetime, kind: TimelineKind, step: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        """Append to the timeline: messages clipped and credentials in URLs masked; a timeline at its
        cap folds its oldest alert signals into one line first."""
        if len(self.view.timeline) >= MAX_TIMELINE_ENTRIES:
            self._fold_timeline()
        self.view.timeline.append(
            TimelineEntry(
                at=now,
                kind=kind,
                step=step,
                message=clip(redact_text(message), MAX_MESSAGE_CHARS),
                data=data or {},
            )
        )
        self.view.updated_at = now

    def _fold_timeline(self) -> None:
        """Make room: alert signal lines (oldest first, half of them) become one summary line; with none
        left to fold, the oldest entries after the first give way."""
        timeline = self.view.timeline
        signals = [
            index for index, entry in enumerate(timeline) if entry.kind == "signal" and entry.step == "alert"
        ]
        folding = (
            set(signals[: max(1, len(signals) // 2)]) if signals else set(range(1, len(timeline) // 4 + 1))
        )
        self.folded_signals += len(folding)
        first = min(folding)
        kept = [
            entry
            for index, entry in enumerate(timeline)
            if index not in folding and not (entry.kind == "note" and entry.step == "timeline")
        ]
        summary = TimelineEntry(
            at=timeline[first].at,
            kind="note",
            step="timeline",
            message=f"{self.folded_signals} older timeline entries folded (alert signals first); "
            "the alerts list keeps each alert's latest state",
        )
        kept.insert(min(first, len(kept)), summary)
        self.view.timeline = kept

    def record(
        self,
        now: datetime,
        action: str,
        mode: Any,
        outcome: Any,
        target: str | None = None,
        message: str = "",
        diff: str = "",
        dry_run: bool = False,
    ) -> None:
        self.view.actions.append(
            ActionRecord(
                at=now,
                action=action,
                mode=mode,
                outcome=outcome,
                target=target,
                message=clip(redact_text(message), MAX_MESSAGE_CHARS),
                diff=clip(diff, MAX_DIFF_CHARS),
                dry_run=dry_run,
            )
        )

    def delivered(
        self, now: datetime, channel: str, title: str, event: NotifyEvent, result: NotifyResult
    ) -> None:
        """Record one channel's answer to one event.

        Every answer joins the delivery record (the audit trail). The timeline shows only what was
        sent, or why it could not be: one line per channel for deliveries that follow each other
        within a step, which later events extend instead of repeating."""
        if len(self.view.deliveries) >= MAX_DELIVERIES:
            del self.view.deliveries[: MAX_DELIVERIES // 4]
        self.view.deliveries.append(
            DeliveryRecord(
                at=now,
                event=event,
                channel=channel,
                outcome=result.outcome,
                sent=result.sent,
                message=clip(redact_text(result.message), MAX_MESSAGE_CHARS),
            )
        )
        self.view.updated_at = now
        if result.outcome == "Successful" and not result.sent:
            return
        kind: TimelineKind = "action" if result.outcome == "Successful" else "note"
        step = f"notify_{channel}"
        told = {"event": event, "message": _without_event(result.message, event), "at": now.isoformat()}
        line = self._line_of_this_step(step, kind)
        if line is None:
            self.log(now, kind, step, "", {"channel": channel, "title": title, "events": [told]})
            line = self.view.timeline[-1]
        else:
            line.data["events"].append(told)
        line.message = _delivery_line(title, line.data["events"])

    def _line_of_this_step(self, step: str, kind: TimelineKind) -> TimelineEntry | None:
        """The delivery line `step` wrote since anything else happened, if any: deliveries fold
        together, never across a step, an action or a signal (so the timeline still reads in order)."""
        for entry in reversed(self.view.timeline):
            if not entry.step.startswith("notify_"):
                return None
            if entry.step == step and entry.kind == kind:
                return entry
        return None

    def move_to(self, now: datetime, state: IncidentStateName) -> bool:
        """Change the incident's state (logged); False when it was already there."""
        if self.view.state == state:
            return False
        self.log(now, "step", state, f"state {self.view.state} -> {state}")
        self.view.state = state
        return True

    # --- signals -------------------------------------------------------------------------------

    def add_signal(self, now: datetime, signal: IncidentSignal) -> None:
        self.signals += 1
        if signal.eval is not None:
            first = self.view.eval is None
            if signal.eval.regression:
                self._symptom_back("eval")
            self.view.eval = signal.eval
            self.log(
                now,
                "signal",
                "eval",
                f"eval {signal.eval.manifest}: {signal.eval.metric} {signal.eval.baseline:.3f} -> "
                f"{signal.eval.candidate:.3f}" + ("" if first else " (repeat)"),
            )
        for alert in signal.alerts:
            self.merge_alert(now, alert)
        if signal.truncated:
            self.log(
                now,
                "note",
                "alert",
                f"{signal.truncated} alert(s) of a {signal.source} notification not carried (the sender's "
                "truncation, namespaces outside the allow list, or the size budget)",
            )

    def merge_alert(self, now: datetime, alert: Alert) -> None:
        # A storm repeats each alert in every notification: a known one is told apart before bounding it.
        known = self.alerts.get(bounded_fingerprint(alert.fingerprint))
        if known is not None and known.status == alert.status:
            self.duplicates += 1
            return
        alert = bounded_alert(alert)
        if known is None and len(self.alerts) >= MAX_INCIDENT_ALERTS:
            self._track_only(now, alert)
            return
        self.alerts[alert.fingerprint] = alert
        name = alert.labels.get("alertname", alert.fingerprint)
        message = (
            f"alert {name} {alert.status}"
            if known is None
            else f"alert {name} {known.status} -> {alert.status}"
        )
        if alert.status == "firing":
            # Firing again (or newly) after the incident was handled: the symptom is back.
            self._symptom_back("alert")
        self.log(now, "signal", "alert", message, {"fingerprint": alert.fingerprint, "labels": alert.labels})
        self.view.alerts = list(self.alerts.values())

    def _track_only(self, now: datetime, alert: Alert) -> None:
        """An alert past the cap: only its state is kept (or, past MAX_TRACKED_ALERTS, a count)."""
        if alert.fingerprint in self.untracked_states or len(self.untracked_states) < MAX_TRACKED_ALERTS:
            if self.untracked_states.get(alert.fingerprint) == alert.status:
                self.duplicates += 1
                return
            self.untracked_states[alert.fingerprint] = alert.status
        if alert.status == "firing":
            self._symptom_back("alert")
        self.alerts_not_kept += 1
        if self.alerts_not_kept == 1 or self.alerts_not_kept % 500 == 0:
            self.log(
                now,
                "note",
                "alert",
                f"{self.alerts_not_kept} alert update(s) past the incident's {MAX_INCIDENT_ALERTS} kept "
                "alerts: their state is tracked, not their labels",
            )

    def _symptom_back(self, reporter: str) -> None:
        """An alert fired or the eval regressed: the symptom is back if the incident was handled."""
        if self.in_cooldown:
            self.refired = True
            self.refired_by.add(reporter)
        elif self.view.state in TERMINAL_STATES:
            self.back_before_cooldown.add(reporter)

    # --- what the incident knows ---------------------------------------------------------------

    def labels(self) -> dict[str, str]:
        """Every alert's labels merged (a later alert's value wins): what runbooks and reports see."""
        labels: dict[str, str] = {}
        for alert in self.alerts.values():
            labels.update(alert.labels)
        return labels

    def firing_alert_names(self) -> set[str]:
        """The names (alertname, else fingerprint) of the kept alerts that are firing."""
        return {
            alert.labels.get("alertname", alert.fingerprint)
            for alert in self.alerts.values()
            if alert.status == "firing"
        }

    def all_alerts_resolved(self) -> bool:
        counted_only = self.alerts_not_kept > 0 and len(self.untracked_states) >= MAX_TRACKED_ALERTS
        if counted_only:
            return False  # some alerts are only counted: never assume they resolved
        untracked_firing = any(status == "firing" for status in self.untracked_states.values())
        return (
            bool(self.alerts)
            and not untracked_firing
            and all(alert.status == "resolved" for alert in self.alerts.values())
        )

    def alerts_about_resolved(self, metric: str) -> bool:
        """Every alert about `metric` resolved (and there is one)."""
        about = [alert for alert in self.alerts.values() if alert.is_about(metric)]
        return bool(about) and all(alert.status == "resolved" for alert in about)

    def page(self, page: ViewPage) -> IncidentView:
        """A slice of the view (the API pages large incidents instead of failing on them)."""
        view = self.view
        return view.model_copy(
            update={
                "alerts": view.alerts[page.alerts_offset : page.alerts_offset + page.alerts_limit],
                "timeline": view.timeline[page.timeline_offset : page.timeline_offset + page.timeline_limit],
                "deliveries": view.deliveries[
                    page.deliveries_offset : page.deliveries_offset + page.deliveries_limit
                ],
                "alerts_total": len(view.alerts),
                "timeline_total": len(view.timeline),
                "deliveries_total": len(view.deliveries),
                "alerts_not_kept": self.alerts_not_kept,
            }
        )

    def approval_plan(self, actions: list[PlannedAction]) -> list[PlannedChange]:
        """The changes to the cluster `actions` would request now, each exactly (target, versions)."""
        plan: list[PlannedChange] = []
        for action in actions:
            if action.type not in MUTATING_ACTIONS or action.mode == "shadow":
                continue
            request = self.remediation_for(action)
            if isinstance(request, str):
                plan.append(PlannedChange(action=action.type, target=f"(none: {request})"))
                continue
            change = request.change
            live = self._latest_change_on(request) or change
            to = request.to_version or (str(request.to_revision) if request.to_revision else None)
            plan.append(
                PlannedChange(
                    action=action.type,
                    target=f"{request.target_type}/{request.namespace}/{request.name}",
                    change_id=change.id if change else None,
                    from_version=live.to_version if live else None,
                    to_version=to or (change.from_version if change else None),
                    replicas=request.replicas,
                )
            )
        return plan

    def _latest_change_on(self, request: RemediationRequest) -> Change | None:
        """The newest known change of the request's object: what runs there now (a change made
        after the culprit, say, is in the plan as what the rollback goes back from)."""
        on_target = [
            change
            for change in (self.bundle.changes if self.bundle else [])
            if change.rollback is not None
            and change.rollback.type == request.target_type
            and change.rollback.name == request.name
            and (change.rollback.namespace or change.namespace) == request.namespace
        ]
        return max(on_target, key=lambda change: change.started_at, default=None)

    def in_approved_plan(self, request: RemediationRequest) -> bool:
        """Whether `request` is one of the changes the last approval covered (no bound plan: yes)."""
        if not self.approved_plan:
            return True
        target = f"{request.target_type}/{request.namespace}/{request.name}"
        change_id = request.change.id if request.change else None
        return any(
            planned.action == request.operation
            and planned.target == target
            and planned.change_id == change_id
            for planned in self.approved_plan
        )

    def approval_scope(self) -> ApprovalScope:
        return ApprovalScope(
            approval=self.view.approval,
            decided=self.approval_result is not None,
            service=self.input.key.service,
            namespace=self.input.key.namespace,
            team=self.team,
        )

    def context_request(self, now: datetime) -> ContextRequest:
        starts = [alert.starts_at for alert in self.alerts.values()]
        detected = min(starts) if starts else (self.view.eval.observed_at if self.view.eval else now)
        return ContextRequest(
            incident_id=self.input.incident_id,
            service=self.input.key.service,
            namespace=self.input.key.namespace,
            source=self.input.source,
            detected_at=detected,
            labels=self.labels(),
            eval=self.view.eval,
            lookback_s=self.input.lookback_s,
            alerts=list(self.alerts.values()),
        )

    def decision_context(
        self,
        now: datetime,
        attribution: AttributionOutput,
        changes: list[Change],
        recent_rollbacks: int,
        missing_evidence: list[str] | None = None,
    ) -> DecisionContext:
        """What runbook conditions may look at, for this incident now."""
        labels = self.labels()
        return DecisionContext(
            incident_id=self.input.incident_id,
            service=self.input.key.service,
            namespace=self.input.key.namespace,
            source=self.input.source,
            severity=labels.get("severity"),
            alertnames=sorted(
                {a.labels["alertname"] for a in self.alerts.values() if "alertname" in a.labels}
            ),
            labels=labels,
            attribution=attribution,
            changes=changes,
            eval=self.view.eval,
            now=now,
            recent_rollbacks=recent_rollbacks,
            missing_evidence=list(missing_evidence or []),
            evidence_series=len(self.bundle.metrics) if self.bundle else 0,
        )

    def change_for(self, action: PlannedAction) -> Change | None:
        """The change an action is about: the one it names, else the top attributed one."""
        changes = self.bundle.changes if self.bundle else []
        wanted = action.names_change()
        if wanted is None and self.view.attribution and self.view.attribution.ranking:
            wanted = self.view.attribution.ranking[0].change_id
        return next((change for change in changes if change.id == wanted), None)

    def remediation_for(self, action: PlannedAction) -> RemediationRequest | str:
        return action.request(self.change_for(action), self.input.incident_id, self.input.key.namespace)

    def describe_target(self, action: PlannedAction) -> str:
        change = self.change_for(action)
        request = self.remediation_for(action)
        if isinstance(request, str):
            return request
        return f"{request.target_type}/{request.name}" + (f" (change {change.id})" if change else "")

    def report(self) -> IncidentReport:
        """A self-contained snapshot for the paging channels, its words written (workflows/summary.py)."""
        view = self.view
        title_service = view.service or "unknown service"
        names = sorted({alert.labels.get("alertname", "") for alert in self.alerts.values()} - {""})
        what = (
            ", ".join(names)
            if names
            else (f"eval {view.eval.manifest} regressed" if view.eval else view.source)
        )
        links = {"backout": f"{self.input.public_url.rstrip('/')}/v1/incidents/{view.id}"}
        if self.input.temporal_ui_url:
            links["temporal"] = (
                f"{self.input.temporal_ui_url.rstrip('/')}/namespaces/default/workflows/{view.id}"
            )
        report = IncidentReport(
            incident_id=view.id,
            title=f"{what} on {title_service}" + (f" ({view.namespace})" if view.namespace else ""),
            state=view.state,
            service=view.service,
            namespace=view.namespace,
            source=view.source,
            severity=self.severity,
            team=self.team,
            detected_at=self.bundle.incident.detected_at if self.bundle else view.opened_at,
            labels=self.labels(),
            attribution=view.attribution,
            changes=self.bundle.changes if self.bundle else [],
            actions=view.actions,
            approval=view.approval,
            eval=view.eval,
            links=links,
            gitops=view.gitops,
        )
        report = render_report(report)
        view.summary = report.summary
        return report


def _without_event(message: str, event: str) -> str:
    """A channel's answer without the event name it may start with ("update posted in thread")."""
    return message[len(event) :].lstrip(" :") if message.startswith(f"{event} ") else message


def _delivery_line(title: str, events: list[dict[str, Any]]) -> str:
    """ "Slack: opened (head message posted); rollback performed, update (posted in thread)"."""
    said: dict[str, list[str]] = {}
    for told in events:
        said.setdefault(told["message"], []).append(str(told["event"]).replace("_", " "))
    parts = [
        ", ".join(dict.fromkeys(names)) + (f" ({message})" if message else "")
        for message, names in said.items()
    ]
    return f"{title}: " + "; ".join(parts)
