"""Alertmanager's webhook (payload version 4): POST /v1/alerts/alertmanager.

One incident per namespace + service (the alert group stands in when the alerts name no
service). Unknown payload fields are accepted and ignored; a wrong version is a 422.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from api.common import ApiError, authorized_json, services, validated
from api.intake import AlertBatch, TemplateAlert, deliver, incident_key_of
from incidents.key import IncidentKey
from incidents.models import IncidentSignal

router = APIRouter()


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
    alerts: list[TemplateAlert] = Field(min_length=1)

    def incident_key(self) -> IncidentKey:
        """namespace + service/workload + alert group: the same for a storm, an HA pair or a retry."""
        return incident_key_of(self.commonLabels, self.alerts, self.groupKey)

    def to_signal(self, received_at: datetime) -> IncidentSignal:
        return IncidentSignal(
            source="alertmanager",
            received_at=received_at,
            alerts=[alert.to_alert() for alert in self.alerts],
            group_key=self.groupKey,
            external_url=self.externalURL or None,
        )


@router.post("/v1/alerts/alertmanager", status_code=202)
async def alertmanager_webhook(request: Request) -> dict[str, Any]:
    body = await authorized_json(request)
    if isinstance(body, dict) and "version" in body and body["version"] != "4":
        raise ApiError(422, "unsupported_version", f'payload version must be "4", got {body["version"]!r}')
    payload = validated(AlertmanagerPayload, body)
    batch = AlertBatch(key=payload.incident_key(), signal=payload.to_signal(datetime.now(UTC)))
    return await deliver(services(request), batch)
