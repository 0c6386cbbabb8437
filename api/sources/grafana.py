"""Grafana alerting's webhook contact point (payload version "1"): POST /v1/alerts/grafana.

Grafana sends Alertmanager's template data (receiver, status, alerts with labels, annotations,
startsAt/endsAt, generatorURL, fingerprint; groupLabels, commonLabels, commonAnnotations,
externalURL, groupKey, truncatedAlerts) plus its own fields: orgId, title, state, message, and per
alert silenceURL, dashboardURL, panelURL and values. The incident key is the Alertmanager one
(namespace + service from the labels, else the group); the group is scoped by the Grafana org.
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


class GrafanaAlert(TemplateAlert):
    silenceURL: str = ""
    dashboardURL: str = ""
    panelURL: str = ""
    values: dict[str, float] | None = None


class GrafanaPayload(BaseModel):
    """Unknown fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    version: Literal["1"]
    orgId: int = Field(ge=0)
    groupKey: str = Field(min_length=1)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    truncatedAlerts: int = 0
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    title: str = ""
    state: str = ""
    message: str = ""
    alerts: list[GrafanaAlert] = Field(min_length=1)

    def incident_key(self) -> IncidentKey:
        return incident_key_of(self.commonLabels, self.alerts, f"grafana/{self.orgId}:{self.groupKey}")

    def to_signal(self, received_at: datetime) -> IncidentSignal:
        return IncidentSignal(
            source="grafana",
            received_at=received_at,
            alerts=[alert.to_alert() for alert in self.alerts],
            group_key=self.groupKey,
            external_url=self.externalURL or None,
        )


@router.post("/v1/alerts/grafana", status_code=202)
async def grafana_webhook(request: Request) -> dict[str, Any]:
    body = await authorized_json(request)
    if isinstance(body, dict) and "version" in body and body["version"] != "1":
        raise ApiError(422, "unsupported_version", f'payload version must be "1", got {body["version"]!r}')
    payload = validated(GrafanaPayload, body)
    batch = AlertBatch(key=payload.incident_key(), signal=payload.to_signal(datetime.now(UTC)))
    return await deliver(services(request), batch)
