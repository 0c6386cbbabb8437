"""Alertmanager v4 notifications as Alertmanager really sends them."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from api.sources.alertmanager import AlertmanagerPayload
from incidents.models import OpenIncidentRequest

ZERO_TIME = "0001-01-01T00:00:00Z"


def alert(
    name: str = "LLMErrorRateHigh",
    service: str = "rag-api",
    namespace: str = "prod",
    status: str = "firing",
    starts_at: str = "2026-11-27T10:00:00Z",
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    labels = {"alertname": name, "service": service, "namespace": namespace, "severity": "critical"}
    labels.update(extra or {})
    fingerprint = hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16]
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{name} on {service}"},
        "startsAt": starts_at,
        "endsAt": ZERO_TIME if status == "firing" else "2026-11-27T10:09:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def notification(alerts: list[dict[str, Any]], group: str = "rag-api", **extra: Any) -> dict[str, Any]:
    common = dict(alerts[0]["labels"])
    for item in alerts[1:]:
        common = {k: v for k, v in common.items() if item["labels"].get(k) == v}
    body: dict[str, Any] = {
        "version": "4",
        "groupKey": f'{{}}:{{service="{group}"}}',
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": "backout\\.prod",
        "groupLabels": {"service": group},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
        "notification_reason": "new alerts",  # newer Alertmanager releases add fields: accepted
    }
    body.update(extra)
    return body


def open_request(
    service: str, namespace: str = "prod", status: str = "firing", name: str = "LLMErrorRateHigh"
) -> OpenIncidentRequest:
    """What the webhook hands to open_or_join for one alert of `service`."""
    payload = AlertmanagerPayload.model_validate(
        notification([alert(name=name, service=service, namespace=namespace, status=status)], group=service)
    )
    key = payload.incident_key()
    return OpenIncidentRequest(
        key=key,
        signal=payload.to_signal(datetime.now(UTC)),
    )
