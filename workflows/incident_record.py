"""The incident's record: its view, timeline, action log, report and the notifications built from them.

The base of IncidentWorkflow: deterministic bookkeeping (time from workflow.now()) plus the notify
activities, so the workflow module keeps only the flow of the incident.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from incidents.actions import Severity
    from incidents.bundle import IncidentBundle
    from incidents.models import (
        ActionRecord,
        Alert,
        ApprovalDecision,
        ChatThread,
        IncidentInput,
        IncidentReport,
        IncidentStateName,
        IncidentView,
        NotifyEvent,
        TimelineEntry,
    )
    from incidents.remediation import RemediationRequest
    from workflows.paging import channels_named, notify_channels
    from workflows.summary import render_report

SHORT_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
)


class IncidentFailure(Exception):
    """A step failed in a way a human must hear about."""


class IncidentRecord:
    """What the incident knows and has done, and how it tells people."""

    def __init__(self, params: IncidentInput) -> None:
        self._input = params
        now = workflow.now()
        self._view = IncidentView(
            id=params.incident_id,
            state="open",
            source=params.source,
            service=params.key.service,
            namespace=params.key.namespace,
            group=params.key.group,
            opened_at=now,
            updated_at=now,
        )
        self._alerts: dict[str, Alert] = {}
        self._signals = 0
        self._duplicates = 0
        self._bundle: IncidentBundle | None = None
        self._threads: dict[str, ChatThread] = {}
        self._team: str | None = None
        self._severity: Severity = "critical"
        self._approval_result: ApprovalDecision | None = None
        self._approval_timed_out = False
        self._in_cooldown = False
        self._refired = False
        self._last_remediation: RemediationRequest | None = None
        self._opening: asyncio.Task[None] | None = None

    async def _needs_human(self, reason: str, team: str | None = None) -> None:
        self._set_state("needs_human")
        self._log("error", "escalate", reason)
        if team:
            self._team = team
        await self._notify("needs_human", detail=reason)

    def _labels(self) -> dict[str, str]:
        """Every alert's labels merged (a later alert's value wins): what runbooks and reports see."""
        labels: dict[str, str] = {}
        for alert in self._alerts.values():
            labels.update(alert.labels)
        return labels

    def _all_alerts_resolved(self) -> bool:
        return bool(self._alerts) and all(a.status == "resolved" for a in self._alerts.values())

    def _record(
        self,
        action: str,
        mode: Any,
        outcome: Any,
        target: str | None = None,
        message: str = "",
        diff: str = "",
    ) -> None:
        self._view.actions.append(
            ActionRecord(
                at=workflow.now(),
                action=action,
                mode=mode,
                outcome=outcome,
                target=target,
                message=message,
                diff=diff,
            )
        )

    def _set_state(self, state: IncidentStateName) -> None:
        if self._view.state == state:
            return
        self._log("step", state, f"state {self._view.state} -> {state}")
        self._view.state = state
        workflow.upsert_memo({"state": state})

    def _log(self, kind: Any, step: str, message: str, data: dict[str, Any] | None = None) -> None:
        now = workflow.now()
        self._view.timeline.append(
            TimelineEntry(at=now, kind=kind, step=step, message=message, data=data or {})
        )
        self._view.updated_at = now

    def _report(self) -> IncidentReport:

        view = self._view
        title_service = view.service or "unknown service"
        names = sorted({a.labels.get("alertname", "") for a in self._alerts.values()} - {""})
        what = (
            ", ".join(names)
            if names
            else (f"eval {view.eval.manifest} regressed" if view.eval else view.source)
        )
        links = {"backout": f"{self._input.public_url.rstrip('/')}/v1/incidents/{view.id}"}
        if self._input.temporal_ui_url:
            links["temporal"] = (
                f"{self._input.temporal_ui_url.rstrip('/')}/namespaces/default/workflows/{view.id}"
            )
        report = IncidentReport(
            incident_id=view.id,
            title=f"{what} on {title_service}" + (f" ({view.namespace})" if view.namespace else ""),
            state=view.state,
            service=view.service,
            namespace=view.namespace,
            source=view.source,
            severity=self._severity,
            team=self._team,
            detected_at=self._bundle.incident.detected_at if self._bundle else view.opened_at,
            labels=self._labels(),
            attribution=view.attribution,
            changes=self._bundle.changes if self._bundle else [],
            actions=view.actions,
            approval=view.approval,
            eval=view.eval,
            links=links,
        )
        report = render_report(report)
        view.summary = report.summary
        return report

    async def _opened(self) -> None:
        """Wait for the opening notification, so later ones reply in its Slack thread."""
        if self._opening is not None:
            opening, self._opening = self._opening, None
            await opening

    async def _notify(
        self, event: NotifyEvent, detail: str | None = None, chat_channel: str | None = None
    ) -> None:
        if event != "opened":
            await self._opened()
        channels = channels_named(self._input.channels)
        decision = self._view.decision
        if (
            decision is not None
            and decision.runbook is not None
            and decision.mode == "shadow"
            and event != "needs_human"
        ):
            # A runbook on trial in shadow mode reports to chat only; it never pages anyone.
            channels = [channel for channel in channels if not channel.pages]
        outcome = await notify_channels(channels, event, self._report(), self._threads, detail, chat_channel)
        self._threads = outcome.threads
        for problem in outcome.errors:
            self._log("error", "notify", f"not delivered: {problem}")
        for name, result in outcome.results.items():
            if result.outcome == "Successful":
                self._log(
                    "action",
                    f"notify_{name}",
                    f"{event} delivered" + (f": {result.message}" if result.message else ""),
                )
            else:
                self._log("note", f"notify_{name}", f"{event}: {result.outcome}: {result.message}")
