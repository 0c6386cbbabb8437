"""Alertmanager's webhook (payload version 4): POST /v1/alerts/alertmanager.

One incident per namespace + service (the alert group stands in when the alerts name no
service). Unknown payload fields are accepted and ignored; a wrong version is a 422.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.common import ApiError, authorized_json, services, validated
from api.intake import AlertBatch, deliver
from incidents.key import IncidentKey, service_from_labels
from incidents.models import Alert, IncidentSignal

router = APIRouter()

# Alertmanager writes this for firing alerts: "no end".
_ZERO_TIME_YEAR = 1


class AlertmanagerAlert(BaseModel):
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


class AlertmanagerPayload(BaseModel):
    """Unknown fields (notification_reason, routeLabels, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    version: Literal["4"]
    groupKey: str = Field(min_length=1)
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[AlertmanagerAlert] = Field(min_length=1)

    def incident_key(self) -> IncidentKey:
        """namespace + service/workload + alert group: the same for a storm, an HA pair or a retry."""
        namespace = self.commonLabels.get("namespace") or _unique(
            a.labels.get("namespace") for a in self.alerts
        )
        service = service_from_labels(self.commonLabels) or _unique(
            service_from_labels(a.labels) for a in self.alerts
        )
        return IncidentKey(namespace=namespace, service=service, group=self.groupKey)

    def to_signal(self, received_at: datetime) -> IncidentSignal:
        return IncidentSignal(
            source="alertmanager",
            received_at=received_at,
            alerts=[alert.to_alert() for alert in self.alerts],
            group_key=self.groupKey,
            external_url=self.externalURL or None,
        )


def _unique(values: object) -> str | None:
    found = {value for value in values if value}  # type: ignore[attr-defined]
    return found.pop() if len(found) == 1 else None


@router.post("/v1/alerts/alertmanager", status_code=202)
async def alertmanager_webhook(request: Request) -> dict[str, Any]:
    body = await authorized_json(request)
    if isinstance(body, dict) and "version" in body and body["version"] != "4":
        raise ApiError(422, "unsupported_version", f'payload version must be "4", got {body["version"]!r}')
    payload = validated(AlertmanagerPayload, body)
    batch = AlertBatch(key=payload.incident_key(), signal=payload.to_signal(datetime.now(UTC)))
    return await deliver(services(request), batch)
