"""PagerDuty: Events API v2 alerts (trigger, acknowledge, resolve) and Change Events, through the
`pagerduty` package (7.x, HTTP via httpx2). It pages: shadow-mode runbooks never reach it.

One dedup key per incident (from the incident id alone): opened and needs_human trigger (the
same key updates the alert), approved/rejected acknowledge, recovered/shadowed/resolved resolve,
every rollback is also a Change Event on the service's timeline.
"""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path
from typing import Any, ClassVar

import httpx2
import pagerduty
from pydantic import BaseModel, Field
from temporalio.exceptions import ApplicationError

from activities.paging.channel import DeliveryError, PagingChannel, delivery_failure, joined
from incidents.actions import Severity
from incidents.models import IncidentReport, NotifyRequest, NotifyResult

DEDUP_PREFIX = "backout/"
TRIGGER_EVENTS = frozenset({"opened", "needs_human"})
ACK_EVENTS = frozenset({"approved", "rejected"})
# Shadow mode runs beside the existing alerting, so backout's own page is closed (Slack keeps the story).
RESOLVE_EVENTS = frozenset({"recovered", "resolved_before_action", "shadowed"})
# The client sleeps with time.sleep between its own attempts; keep them few and short
# so the activity's retry policy (with Temporal's backoff) owns real retries.
_CLIENT_ATTEMPTS_PER_STATUS = 1
_CLIENT_SLEEP_S = 0.2
_REQUEST_TIMEOUT_S = 10.0


def dedup_key_for(incident_id: str) -> str:
    """Stable PagerDuty dedup key from the incident id alone (never from a title)."""
    key = f"{DEDUP_PREFIX}{incident_id}"
    if len(key) <= 255:
        return key
    digest = hashlib.sha256(incident_id.encode("utf-8")).hexdigest()
    return f"{DEDUP_PREFIX}{incident_id[:180]}~{digest[:32]}"


class PagerAlert(BaseModel):
    """One Events API v2 alert."""

    dedup_key: str = Field(min_length=1, max_length=255)
    summary: str = Field(min_length=1, max_length=1024)
    source: str = Field(min_length=1)
    severity: Severity = "critical"
    timestamp: str | None = None
    component: str | None = None
    group: str | None = None
    alert_class: str | None = None
    custom_details: dict[str, Any] = Field(default_factory=dict)
    links: list[dict[str, str]] = Field(default_factory=list)


class PagerChange(BaseModel):
    """A change event: recorded on the service's timeline, never pages anyone."""

    summary: str = Field(min_length=1, max_length=1024)
    source: str = Field(min_length=1)
    timestamp: str
    custom_details: dict[str, Any] = Field(default_factory=dict)
    links: list[dict[str, str]] = Field(default_factory=list)


# --- What a page says ----------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _links(report: IncidentReport) -> list[dict[str, str]]:
    return [{"href": href, "text": name} for name, href in sorted(report.links.items()) if href]


def pager_alert(request: NotifyRequest) -> PagerAlert:
    report = request.report
    severity = "critical" if request.event == "needs_human" else report.severity
    prefix = "[needs human] " if request.event == "needs_human" else ""
    top = report.culprits[0] if report.culprits else None
    likely = f" - likely {top.change_id} (p={top.probability:.2f})" if top else ""
    details: dict[str, Any] = {
        "incident_id": report.incident_id,
        "state": report.state,
        "summary": report.summary,
        "ranked_culprits": [culprit.model_dump() for culprit in report.culprits[:5]],
        "actions_taken": list(report.done),
        "links": dict(report.links),
    }
    if request.detail:
        details["reason" if request.event == "needs_human" else "detail"] = request.detail
    return PagerAlert(
        dedup_key=dedup_key_for(report.incident_id),
        summary=_clip(f"{prefix}{report.title}{likely}", 1024),
        source=f"{report.namespace}/{report.service}" if report.namespace else (report.service or "backout"),
        severity=severity,
        timestamp=report.detected_at.isoformat(),
        component=report.service,
        group=report.namespace,
        alert_class=report.labels.get("alertname") or report.source,
        custom_details=details,
        links=_links(report),
    )


def pager_change(request: NotifyRequest) -> PagerChange:
    report = request.report
    rollback = report.last_rollback()
    record, described = rollback if rollback else (None, None)
    target = record.target if record and record.target else (report.service or "unknown target")
    when = record.at if record else report.detected_at
    return PagerChange(
        summary=_clip(f"backout rolled back {target} (incident {report.incident_id})", 1024),
        source="backout",
        timestamp=when.isoformat(),
        custom_details={
            "incident_id": report.incident_id,
            "service": report.service,
            "namespace": report.namespace,
            "rollback": described if record else request.detail,
            "diff": (record.diff[:2000] if record else ""),
            "top_culprit": report.culprits[0].model_dump() if report.culprits else None,
        },
        links=_links(report),
    )


# --- The Events API client -------------------------------------------------------------------


def _status_error(exc: pagerduty.HttpError, action: str) -> DeliveryError:
    status = exc.response.status_code if exc.response is not None else None
    body = exc.response.text[:300] if exc.response is not None else ""
    if status is None:
        return DeliveryError("pagerduty", f"{action} failed: {exc}", retryable=True)
    retryable = status == 429 or status >= 500
    hint = "rate limited" if status == 429 else ("server error" if status >= 500 else "rejected")
    return DeliveryError(
        "pagerduty", f"{action} {hint} (HTTP {status}): {body}", retryable=retryable, status=status
    )


class PagerDutyClient:
    """Events API v2 through the `pagerduty` package, with bounded client-side retries."""

    def __init__(self, routing_key: str, base_url: str, ca_file: Path | None = None) -> None:
        if not base_url.startswith("https://"):
            raise ValueError(f"pagerduty_events_url must be https, got {base_url!r}")
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=str(ca_file))
        self._client = pagerduty.EventsApiV2Client(routing_key, base_url=base_url.rstrip("/"), verify=verify)
        self._client.timeout = _REQUEST_TIMEOUT_S  # type: ignore[assignment]
        self._client.sleep_timer = _CLIENT_SLEEP_S
        self._client.sleep_timer_base = 1
        self._client.max_network_attempts = 0
        # A status with retry 0 is retried forever when it is 429: cap every retried status.
        for status in (429, 500, 502, 503, 504):
            self._client.retry[status] = _CLIENT_ATTEMPTS_PER_STATUS

    def close(self) -> None:
        self._client.close()

    def _call(self, action: str, fn: object, *args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)  # type: ignore[operator]
        except pagerduty.HttpError as exc:
            raise _status_error(exc, action) from exc
        except (pagerduty.Error, httpx2.HTTPError) as exc:
            raise DeliveryError("pagerduty", f"{action} failed: {exc}", retryable=True) from exc

    def trigger(self, alert: PagerAlert) -> str:
        payload: dict[str, object] = {}
        for field, value in (
            ("component", alert.component),
            ("group", alert.group),
            ("timestamp", alert.timestamp),
        ):
            if value:
                payload[field] = value
        if alert.alert_class:
            payload["class"] = alert.alert_class
        key = self._call(
            "trigger",
            self._client.trigger,
            summary=alert.summary,
            source=alert.source,
            dedup_key=alert.dedup_key,
            severity=alert.severity,
            payload=payload or None,
            custom_details=alert.custom_details,
            links=alert.links or None,
        )
        return str(key)

    def acknowledge(self, dedup_key: str) -> None:
        self._call("acknowledge", self._client.acknowledge, dedup_key)

    def resolve(self, dedup_key: str) -> None:
        self._call("resolve", self._client.resolve, dedup_key)

    def change_event(self, change: PagerChange) -> None:
        # send_change_event, not submit(): submit() without a timestamp crashes in 7.2.0.
        self._call(
            "change event",
            self._client.send_change_event,
            payload={
                "summary": change.summary,
                "source": change.source,
                "timestamp": change.timestamp,
                "custom_details": change.custom_details,
            },
            links=change.links or None,
        )


# --- The channel ---------------------------------------------------------------------------------


class PagerDutyChannel(PagingChannel):
    name: ClassVar[str] = "pagerduty"
    title: ClassVar[str] = "PagerDuty"
    pages: ClassVar[bool] = True
    position: ClassVar[int] = 10

    def send(self, request: NotifyRequest) -> NotifyResult:
        settings = self.settings
        owner, note = self.owners.for_report(request.report)
        routing_key = owner.pagerduty_routing_key or (
            settings.pagerduty_routing_key.get_secret_value() if settings.pagerduty_routing_key else None
        )
        dedup_key = dedup_key_for(request.report.incident_id)
        if not routing_key:
            return NotifyResult(
                channel=self.name,
                outcome="Inconclusive",
                message="PagerDuty not configured (no routing key for the team or in settings): nothing sent",
                dedup_key=dedup_key,
                sent=False,
            )
        event = request.event
        if event not in TRIGGER_EVENTS | ACK_EVENTS | RESOLVE_EVENTS | {"rollback_performed"}:
            return NotifyResult(
                channel=self.name,
                outcome="Successful",
                message=f"nothing to send for {event}",
                dedup_key=dedup_key,
                sent=False,
            )
        try:
            client = PagerDutyClient(routing_key, settings.pagerduty_events_url, settings.pagerduty_ca_file)
        except (ValueError, OSError) as exc:  # not https, or an unreadable CA file
            raise ApplicationError(f"pagerduty: {exc}", type="NotifyRejected", non_retryable=True) from exc
        try:
            if event in TRIGGER_EVENTS:
                client.trigger(pager_alert(request))
                message = f"trigger sent ({request.report.severity if event == 'opened' else 'critical'})"
            elif event in ACK_EVENTS:
                client.acknowledge(dedup_key)
                message = "acknowledged"
            elif event in RESOLVE_EVENTS:
                client.resolve(dedup_key)
                message = "resolved"
            else:
                client.change_event(pager_change(request))
                message = "change event sent"
        except DeliveryError as exc:
            raise delivery_failure(exc) from exc
        finally:
            client.close()
        return NotifyResult(
            channel=self.name, outcome="Successful", message=joined(message, note), dedup_key=dedup_key
        )

    @classmethod
    def failure_note(cls, request: NotifyRequest, failed: str, error: str) -> NotifyRequest | None:
        # Re-triggering with the same dedup key updates the open alert; other events page nobody.
        if request.event not in TRIGGER_EVENTS:
            return None
        prefix = f"{request.detail}; " if request.detail else ""
        return request.model_copy(update={"detail": f"{prefix}{failed} notification failed: {error}"})
