"""The one path every alert source takes into an incident: dedupe, then deliver.

A source turns its webhook payload into an `AlertBatch` (the incident it belongs to, a digest of
what it says, the signal for it, built only when needed) and hands it to `deliver`. An HA twin or a
retry of a batch delivered moments ago is answered without Temporal; a twin of one still in flight
shares its outcome; a batch with a firing alert opens or joins the incident (signal-with-start); a
resolved-only batch reaches an open incident and never opens one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Literal

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from activities.incidents import open_or_join, signal_if_open
from api.common import ApiError, Services, temporal_call
from config import Settings
from incidents.key import IncidentKey, service_from_labels
from incidents.limits import (
    MAX_ALERTS_PER_NOTIFICATION,
    MAX_URL_CHARS,
    clip,
    within_signal_budget,
)
from incidents.models import Alert, IncidentSignal, OpenIncidentRequest

ALERTS_RECEIVED = Counter(
    "backout_alerts_received_total", "Alerts received from the alert sources", ["status"]
)
DUPLICATES_ABSORBED = Counter(
    "backout_duplicate_notifications_total", "Notifications identical to one delivered moments before"
)
SIGNALS_THROTTLED = Counter(
    "backout_notifications_throttled_total", "Notifications answered 503 because their incident got too many"
)


# Alertmanager writes this year for a firing alert's end: "no end".
_ZERO_TIME_YEAR = 1


# A real alert started after this and at most this far in the sender's future (clock skew).
_EARLIEST_START = datetime(2000, 1, 1, tzinfo=UTC)
_FUTURE_SKEW = timedelta(days=1)


class TemplateAlert(BaseModel):
    """One alert as Alertmanager's webhook template data carries it (Grafana alerting sends the
    same shape, with a few fields of its own); unknown fields are accepted and ignored.

    Times are RFC 3339 strings as both senders write them (a number such as 12 is refused);
    sizes are bounded when the alert is handed on (incidents/limits.py)."""

    model_config = ConfigDict(extra="allow")
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str | None = None

    @field_validator("startsAt", "endsAt", mode="before")
    @classmethod
    def _rfc3339_text(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError(f"must be an RFC 3339 time string, not {type(value).__name__}")
        return value

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamp needs a UTC offset (RFC 3339)")
        return value

    @field_validator("startsAt")
    @classmethod
    def _plausible_start(cls, value: datetime) -> datetime:
        try:
            value = value.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"{value.isoformat()} is out of range") from None
        if value < _EARLIEST_START:
            raise ValueError(f"{value.isoformat()} is before 2000: not when an alert started")
        if value > datetime.now(UTC) + _FUTURE_SKEW:
            raise ValueError(f"{value.isoformat()} is more than a day in the future")
        return value

    def stable_fingerprint(self) -> str:
        if self.fingerprint:
            return self.fingerprint
        canonical = "\x1f".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_alert(self) -> Alert:
        ends = self.endsAt if self.endsAt and self.endsAt.year > _ZERO_TIME_YEAR else None
        # Not bounded here: within_signal_budget bounds every alert it carries.
        return Alert(
            fingerprint=self.stable_fingerprint(),
            status=self.status,
            labels=self.labels,
            annotations=self.annotations,
            starts_at=self.startsAt,
            ends_at=ends,
            generator_url=self.generatorURL or None,
        )

    def namespace(self) -> str | None:
        return self.labels.get("namespace") or None


def incident_key_of(
    common_labels: dict[str, str], alerts: Sequence[TemplateAlert], group: str
) -> IncidentKey:
    """namespace + service/workload (from the labels all alerts share, else the one value they all
    name) + the alert group: the same key for a storm, an HA pair or a retry."""
    namespace = common_labels.get("namespace") or _unique(alert.labels.get("namespace") for alert in alerts)
    service = service_from_labels(common_labels) or _unique(
        service_from_labels(alert.labels) for alert in alerts
    )
    return IncidentKey(namespace=namespace, service=service, group=group)


def _unique(values: Iterable[str | None]) -> str | None:
    found = {value for value in values if value}
    return found.pop() if len(found) == 1 else None


class NotificationFields(BaseModel):
    """The envelope fields every Alertmanager-shaped payload shares, with their bounds."""

    model_config = ConfigDict(extra="allow")
    groupKey: str = Field(min_length=1, max_length=1024)
    truncatedAlerts: int = Field(default=0, ge=0, le=1_000_000_000)
    status: Literal["firing", "resolved"]
    receiver: str = Field(default="", max_length=1024)
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = Field(default="", max_length=MAX_URL_CHARS)


def allowed_alerts(
    settings: Settings, alerts: Sequence[TemplateAlert]
) -> tuple[list[TemplateAlert], list[str]]:
    """The alerts backout may look at (an alert naming a namespace outside the allow list is not
    one of them); the namespaces refused."""
    kept = [
        alert
        for alert in alerts
        if alert.namespace() is None or settings.namespace_allowed(alert.namespace())
    ]
    refused = sorted(
        {ns for alert in alerts if (ns := alert.namespace()) and not settings.namespace_allowed(ns)}
    )
    return kept, refused


def build_batch(
    settings: Settings,
    source: str,
    envelope: NotificationFields,
    alerts: Sequence[TemplateAlert],
    group: str,
    received_at: datetime,
) -> AlertBatch:
    """The incident key of one notification and what it says, within the allow list; its signal
    (within the size limits) is built when it is delivered.

    Raises a 403 when every alert names a namespace outside the allow list (nothing to deliver,
    and a retry would not change that)."""
    considered = list(alerts[:MAX_ALERTS_PER_NOTIFICATION])
    over_count = len(alerts) - len(considered)
    kept, refused = allowed_alerts(settings, considered)
    if not kept:
        raise ApiError(
            403,
            "namespace_not_allowed",
            f"namespace(s) {', '.join(refused)} are outside backout's allow list: nothing delivered",
        )
    common = {
        k: v for k, v in envelope.commonLabels.items() if k != "namespace" or settings.namespace_allowed(v)
    }
    key = incident_key_of(common, kept, group)
    if key.namespace is not None and not settings.namespace_allowed(key.namespace):
        raise ApiError(403, "namespace_not_allowed", f"namespace {key.namespace} is outside the allow list")
    return AlertBatch(
        key=key,
        source=source,
        alerts=kept,
        received_at=received_at,
        group_key=clip(envelope.groupKey, 1024),
        external_url=envelope.externalURL or None,
        not_carried=envelope.truncatedAlerts + over_count + (len(considered) - len(kept)),
        refused_namespaces=refused,
    )


class AlertBatch:
    """One notification of an alert source, as the incident sees it.

    What identifies it (the incident, the digest) comes from the validated alerts alone; the signal,
    each alert normalised and bounded, is built on first use: an HA twin or a retry of a delivered
    notification is answered without it."""

    def __init__(
        self,
        key: IncidentKey,
        source: str,
        alerts: Sequence[TemplateAlert],
        received_at: datetime,
        group_key: str,
        external_url: str | None,
        not_carried: int,
        refused_namespaces: list[str],
    ) -> None:
        self.key = key
        self.source = source
        self.alerts = list(alerts)
        self.received_at = received_at
        self.group_key = group_key
        self.external_url = external_url
        self.not_carried = not_carried
        self.refused_namespaces = refused_namespaces

    @cached_property
    def signal(self) -> IncidentSignal:
        carried, over_budget = within_signal_budget([alert.to_alert() for alert in self.alerts])
        return IncidentSignal(
            source=self.source,
            received_at=self.received_at,
            alerts=carried,
            group_key=self.group_key,
            external_url=self.external_url,
            truncated=self.not_carried + over_budget,
        )

    @property
    def firing(self) -> int:
        return sum(1 for alert in self.alerts if alert.status == "firing")

    @property
    def any_firing(self) -> bool:
        # The signal carries firing alerts first: one fires in it whenever one fires here.
        return any(alert.status == "firing" for alert in self.alerts)

    @cached_property
    def digest(self) -> str:
        """What the incident would learn from it (each alert's identity and state): same digest, nothing new."""
        parts = sorted(
            f"{alert.stable_fingerprint()}|{alert.status}|{alert.startsAt.isoformat()}"
            for alert in self.alerts
        )
        return hashlib.sha256("\n".join([self.key.group, *parts]).encode()).hexdigest()


async def deliver(services: Services, batch: AlertBatch) -> dict[str, Any]:
    """Open, join or signal the batch's incident; the JSON answer of the webhook."""
    alerts = len(batch.alerts)
    firing = batch.firing
    for status, count in (("firing", firing), ("resolved", alerts - firing)):
        if count:
            ALERTS_RECEIVED.labels(status).inc(count)
    incident_id = batch.key.workflow_id()
    delivery = (incident_id, batch.key.group, batch.digest)
    deliveries = services.deliveries
    if deliveries.seen(delivery):
        # An HA twin or a retry of a notification already delivered: the signal would change nothing.
        DUPLICATES_ABSORBED.inc()
        return {"incident_id": incident_id, "status": "duplicate", "alerts": alerts}

    async def send() -> dict[str, Any]:
        # Only the delivery that goes to Temporal counts against the incident's budget: a twin that
        # rides on it shares its answer, a 503 included (Alertmanager retries both).
        refusal = services.throttle.refusal(incident_id, len(batch.signal.model_dump_json()))
        if refusal is not None:
            # Bounds one incident's Temporal history: a sender over the rate is told to come back
            # (Alertmanager retries a 503 and its next notification carries the whole group anyway).
            SIGNALS_THROTTLED.inc()
            raise ApiError(
                503, "throttled", f"incident {incident_id} got {refusal}", headers={"Retry-After": "60"}
            )
        client = await services.gateway.client()
        if not batch.any_firing:
            delivered = await temporal_call(signal_if_open(client, batch.key, batch.signal))
            if delivered:
                deliveries.remember(delivery)
            return {
                "incident_id": incident_id if delivered else None,
                "status": "resolved" if delivered else "no open incident",
            }
        request = OpenIncidentRequest(key=batch.key, signal=batch.signal)
        handle = await temporal_call(open_or_join(client, services.behaviour, request))
        deliveries.remember(delivery)
        return {"incident_id": handle.id, "status": "accepted", "alerts": len(batch.signal.alerts)}

    outcome, twin = await deliveries.deliver_once(delivery, send)
    if twin and outcome["incident_id"] is not None:
        DUPLICATES_ABSORBED.inc()
        return {**outcome, "status": "duplicate"}
    answer = dict(outcome)
    if batch.signal.truncated:
        answer["not_carried"] = batch.signal.truncated
    if batch.refused_namespaces:
        answer["refused_namespaces"] = batch.refused_namespaces
    return answer
