"""Temporal activities: notify_pagerduty, notify_slack, resolve_owner, rewrite_summary.

Retry contract: a rate limit, 5xx or network failure raises a retryable ApplicationError
(Temporal's retry policy owns backoff); a rejected request (400, bad token, unknown
channel) raises a non-retryable one. A channel that is not configured answers
`Inconclusive` without raising, so a demo without PagerDuty or Slack still runs.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.paging.base import DeliveryError, Owner, OwnerRequest, RewriteRequest, RewrittenSummary
from activities.paging.messages import (
    approval_blocks,
    head_blocks,
    pager_alert,
    pager_change,
    reply_blocks,
)
from activities.paging.owners import (
    OwnershipError,
    OwnershipFile,
    load_ownership,
    read_workload_team,
    resolve_owner,
)
from activities.paging.pagerduty import PagerDutyPager, dedup_key_for
from activities.paging.rewrite import rewrite_summary_text
from activities.paging.slack import SlackNotifier
from incidents.models import ChatThread, IncidentReport, NotifyRequest, NotifyResult
from worker.settings import Settings, current_settings

_TRIGGER_EVENTS = frozenset({"opened", "needs_human"})
_ACK_EVENTS = frozenset({"approved", "rejected"})
# Shadow mode runs beside the existing alerting, so backout's own page is closed (Slack keeps the story).
_RESOLVE_EVENTS = frozenset({"recovered", "resolved_before_action", "shadowed"})


def _application_error(error: DeliveryError) -> ApplicationError:
    kind = "NotifyUnavailable" if error.retryable else "NotifyRejected"
    return ApplicationError(str(error), type=kind, non_retryable=not error.retryable)


def _joined(message: str, note: str) -> str:
    return f"{message}; {note}" if note else message


class PagingActivities:
    """The paging activities bound to one Settings (loaded from the environment when not given)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @property
    def settings(self) -> Settings:
        return self._settings if self._settings is not None else current_settings()

    def configure(self, settings: Settings) -> None:
        self._settings = settings

    # --- ownership --------------------------------------------------------------------

    def _ownership(self) -> OwnershipFile | None:
        path = self.settings.ownership_file
        if path is None:
            return None
        try:
            return load_ownership(path)
        except OwnershipError as exc:
            raise ApplicationError(str(exc), type="OwnershipError", non_retryable=True) from exc

    def _kubeconfig(self) -> Path | None:
        if self.settings.kubeconfig is not None:
            return self.settings.kubeconfig
        env = os.environ.get("KUBECONFIG")
        return Path(env) if env else None

    def owner(self, request: OwnerRequest, ownership: OwnershipFile | None = None) -> Owner:
        workload_team = None
        kubeconfig = self._kubeconfig()
        if kubeconfig is not None and request.service and request.namespace:
            workload_team = read_workload_team(request.service, request.namespace, kubeconfig)
        return resolve_owner(
            request, ownership if ownership is not None else self._ownership(), workload_team
        )

    def owner_for_report(self, report: IncidentReport) -> tuple[Owner, str]:
        """The team named in the report wins (the runbook chose it); else look the service up.

        A broken ownership file must not silence a page: it falls back to the global
        settings and says so in the returned note.
        """
        try:
            ownership = self._ownership()
        except ApplicationError as exc:
            return Owner(source="none"), f"ownership file unusable, used the global settings: {exc}"
        if report.team and ownership is not None and report.team in ownership.teams:
            return ownership.owner_of_team(report.team, "ownership_file"), ""
        request = OwnerRequest(service=report.service, namespace=report.namespace, labels=report.labels)
        return self.owner(request, ownership or OwnershipFile()), ""

    @activity.defn(name="resolve_owner")
    async def resolve_owner(self, request: OwnerRequest) -> Owner:
        return await asyncio.to_thread(self.owner, request)

    # --- PagerDuty --------------------------------------------------------------------

    def send_pagerduty(self, request: NotifyRequest) -> NotifyResult:
        settings = self.settings
        owner, note = self.owner_for_report(request.report)
        routing_key = owner.pagerduty_routing_key or (
            settings.pagerduty_routing_key.get_secret_value() if settings.pagerduty_routing_key else None
        )
        dedup_key = dedup_key_for(request.report.incident_id)
        if not routing_key:
            return NotifyResult(
                channel="pagerduty",
                outcome="Inconclusive",
                message="PagerDuty not configured (no routing key for the team or in settings): nothing sent",
                dedup_key=dedup_key,
            )
        event = request.event
        if event not in _TRIGGER_EVENTS | _ACK_EVENTS | _RESOLVE_EVENTS | {"rollback_performed"}:
            return NotifyResult(
                channel="pagerduty",
                outcome="Successful",
                message=f"nothing to send for {event}",
                dedup_key=dedup_key,
            )
        try:
            pager = PagerDutyPager(routing_key, settings.pagerduty_events_url, settings.pagerduty_ca_file)
        except (ValueError, OSError) as exc:  # not https, or an unreadable CA file
            raise ApplicationError(f"pagerduty: {exc}", type="NotifyRejected", non_retryable=True) from exc
        try:
            if event in _TRIGGER_EVENTS:
                pager.trigger(pager_alert(request))
                message = f"trigger sent ({request.report.severity if event == 'opened' else 'critical'})"
            elif event in _ACK_EVENTS:
                pager.acknowledge(dedup_key)
                message = "acknowledged"
            elif event in _RESOLVE_EVENTS:
                pager.resolve(dedup_key)
                message = "resolved"
            else:
                pager.change_event(pager_change(request))
                message = "change event sent"
        except DeliveryError as exc:
            raise _application_error(exc) from exc
        finally:
            pager.close()
        return NotifyResult(
            channel="pagerduty", outcome="Successful", message=_joined(message, note), dedup_key=dedup_key
        )

    @activity.defn(name="notify_pagerduty")
    async def notify_pagerduty(self, request: NotifyRequest) -> NotifyResult:
        return await asyncio.to_thread(self.send_pagerduty, request)

    # --- Slack ------------------------------------------------------------------------

    def send_slack(self, request: NotifyRequest) -> NotifyResult:
        settings = self.settings
        if settings.slack_token is None or not settings.slack_token.get_secret_value():
            return NotifyResult(
                channel="slack",
                outcome="Inconclusive",
                message="Slack not configured (no token): nothing sent",
            )
        thread = request.thread
        owner, note = self.owner_for_report(request.report)
        channel = thread.channel if thread else (owner.slack_channel or settings.slack_channel)
        if not channel:
            return NotifyResult(
                channel="slack",
                outcome="Inconclusive",
                message="no Slack channel for the team or in settings: nothing sent",
            )
        slack = SlackNotifier(settings.slack_token.get_secret_value(), settings.slack_api_url)
        try:
            thread, posted_head = self._ensure_head(slack, channel, request)
            if request.event == "opened":
                return NotifyResult(
                    channel="slack",
                    outcome="Successful",
                    message=_joined("head message posted" if posted_head else "head message updated", note),
                    thread=thread,
                )
            # Edit first: the edit is idempotent, the reply is not, so a retry never duplicates it.
            if not posted_head:
                text, blocks = head_blocks(request.report)
                slack.update(thread, text, blocks)
            if request.event == "approval_requested":
                text, blocks = approval_blocks(request, owner.team)
            else:
                text, blocks = reply_blocks(request)
            slack.post(thread.channel, text, blocks, thread_ts=thread.ts)
        except DeliveryError as exc:
            raise _application_error(exc) from exc
        except ValueError as exc:
            raise ApplicationError(str(exc), type="NotifyRejected", non_retryable=True) from exc
        return NotifyResult(
            channel="slack",
            outcome="Successful",
            message=_joined(f"{request.event} posted in thread", note),
            thread=thread,
        )

    def _ensure_head(
        self, slack: SlackNotifier, channel: str, request: NotifyRequest
    ) -> tuple[ChatThread, bool]:
        text, blocks = head_blocks(request.report)
        if request.thread is None:
            return slack.post(channel, text, blocks), True
        if request.event == "opened":
            slack.update(request.thread, text, blocks)
        return request.thread, False

    @activity.defn(name="notify_slack")
    async def notify_slack(self, request: NotifyRequest) -> NotifyResult:
        return await asyncio.to_thread(self.send_slack, request)

    # --- Optional LLM rewrite -----------------------------------------------------------

    @activity.defn(name="rewrite_summary")
    async def rewrite_summary(self, request: RewriteRequest) -> RewrittenSummary:
        return await rewrite_summary_text(request, self.settings)


_DEFAULT = PagingActivities()

ACTIVITIES = [
    _DEFAULT.notify_pagerduty,
    _DEFAULT.notify_slack,
    _DEFAULT.resolve_owner,
    _DEFAULT.rewrite_summary,
]


def configure(settings: Settings) -> None:
    """Bind the registered activities to the worker's settings (else they read the environment)."""
    _DEFAULT.configure(settings)
