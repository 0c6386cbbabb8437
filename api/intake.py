"""The one path every alert source takes into an incident: dedupe, then deliver.

A source turns its webhook payload into an `AlertBatch` (the incident it belongs to, the signal
for it, a digest of what it says) and hands it to `deliver`. An HA twin or a retry of a batch
delivered moments ago is answered without Temporal; a twin of one still in flight shares its
outcome; a batch with a firing alert opens or joins the incident (signal-with-start); a
resolved-only batch reaches an open incident and never opens one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from activities.incidents import open_or_join, signal_if_open
from api.common import Services, temporal_call
from incidents.key import IncidentKey, service_from_labels
from incidents.models import Alert, IncidentSignal, OpenIncidentRequest

ALERTS_RECEIVED = Counter(
    "backout_alerts_received_total", "Alerts received from the alert sources", ["status"]
)
DUPLICATES_ABSORBED = Counter(
    "backout_duplicate_notifications_total", "Notifications identical to one delivered moments before"
)


# Alertmanager writes this year for a firing alert's end: "no end".
_ZERO_TIME_YEAR = 1


class TemplateAlert(BaseModel):
    """One alert as Alertmanager's webhook template data carries it (Grafana alerting sends the
    same shape, with a few fields of its own); unknown fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str | None = None

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamp needs a UTC offset (RFC 3339)")
        return value

    def stable_fingerprint(self) -> str:
        if self.fingerprint:
            return self.fingerprint
        canonical = "\x1f".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_alert(self) -> Alert:
        ends = self.endsAt if self.endsAt and self.endsAt.year > _ZERO_TIME_YEAR else None
        return Alert(
            fingerprint=self.stable_fingerprint(),
            status=self.status,
            labels=self.labels,
            annotations=self.annotations,
            starts_at=self.startsAt,
            ends_at=ends,
            generator_url=self.generatorURL or None,
        )


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


class AlertBatch(BaseModel):
    """One notification of an alert source, as the incident sees it."""

    key: IncidentKey
    signal: IncidentSignal

    @property
    def any_firing(self) -> bool:
        return any(alert.status == "firing" for alert in self.signal.alerts)

    @property
    def digest(self) -> str:
        """What the incident would learn from it (each alert's identity and state): same digest, nothing new."""
        parts = sorted(
            f"{alert.fingerprint}|{alert.status}|{alert.starts_at.isoformat()}"
            for alert in self.signal.alerts
        )
        return hashlib.sha256("\n".join([self.key.group, *parts]).encode()).hexdigest()


async def deliver(services: Services, batch: AlertBatch) -> dict[str, Any]:
    """Open, join or signal the batch's incident; the JSON answer of the webhook."""
    alerts = len(batch.signal.alerts)
    for alert in batch.signal.alerts:
        ALERTS_RECEIVED.labels(alert.status).inc()
    incident_id = batch.key.workflow_id()
    delivery = (incident_id, batch.key.group, batch.digest)
    deliveries = services.deliveries
    if deliveries.seen(delivery):
        # An HA twin or a retry of a notification already delivered: the signal would change nothing.
        DUPLICATES_ABSORBED.inc()
        return {"incident_id": incident_id, "status": "duplicate", "alerts": alerts}

    async def send() -> dict[str, Any]:
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
        return {"incident_id": handle.id, "status": "accepted", "alerts": alerts}

    outcome, twin = await deliveries.deliver_once(delivery, send)
    if twin and outcome["incident_id"] is not None:
        DUPLICATES_ABSORBED.inc()
        return {**outcome, "status": "duplicate"}
    return dict(outcome)
