"""The one path every alert source takes into an incident: dedupe, then deliver.

A source turns its webhook payload into an `AlertBatch` (the incident it belongs to, the signal
for it, a digest of what it says) and hands it to `deliver`. An HA twin or a retry of a batch
delivered moments ago is answered without Temporal; a twin of one still in flight shares its
outcome; a batch with a firing alert opens or joins the incident (signal-with-start); a
resolved-only batch reaches an open incident and never opens one.
"""

from __future__ import annotations

import hashlib
from typing import Any

from prometheus_client import Counter
from pydantic import BaseModel

from activities.incidents import open_or_join, signal_if_open
from api.common import Services, temporal_call
from incidents.key import IncidentKey
from incidents.models import IncidentSignal, OpenIncidentRequest

ALERTS_RECEIVED = Counter("backout_alerts_received_total", "Alerts received from Alertmanager", ["status"])
DUPLICATES_ABSORBED = Counter(
    "backout_duplicate_notifications_total", "Notifications identical to one delivered moments before"
)


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
