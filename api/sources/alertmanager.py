"""Alertmanager's webhook (payload version 4): POST /v1/alerts/alertmanager (sender token).

One incident per namespace + service (the alert group stands in when the alerts name no
service). Unknown payload fields are accepted and ignored; a wrong version is a 422.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field

from api.common import ApiError, json_body, services, validated
from api.intake import NotificationFields, TemplateAlert, build_batch, deliver, incident_key_of
from incidents.key import IncidentKey
from incidents.limits import within_signal_budget
from incidents.models import IncidentSignal

router = APIRouter()


class AlertmanagerPayload(NotificationFields):
    """Unknown fields (notification_reason, routeLabels, ...) are accepted and ignored."""

    version: Literal["4"]
    alerts: list[TemplateAlert] = Field(min_length=1)

    def incident_key(self) -> IncidentKey:
        """namespace + service/workload + alert group: the same for a storm, an HA pair or a retry."""
        return incident_key_of(self.commonLabels, self.alerts, self.groupKey)

    def to_signal(self, received_at: datetime) -> IncidentSignal:
        """Every alert as a signal (the route builds it with build_batch, which applies the allow list)."""
        alerts, over_budget = within_signal_budget([alert.to_alert() for alert in self.alerts])
        return IncidentSignal(
            source="alertmanager",
            received_at=received_at,
            alerts=alerts,
            group_key=self.groupKey,
            external_url=self.externalURL or None,
            truncated=self.truncatedAlerts + over_budget,
        )


@router.post("/v1/alerts/alertmanager", status_code=202)
async def alertmanager_webhook(request: Request) -> dict[str, Any]:
    body = await json_body(request)
    if isinstance(body, dict) and "version" in body and body["version"] != "4":
        raise ApiError(422, "unsupported_version", f'payload version must be "4", got {body["version"]!r}')
    payload = validated(AlertmanagerPayload, body)
    found = services(request)
    batch = build_batch(
        found.settings, "alertmanager", payload, payload.alerts, payload.groupKey, datetime.now(UTC)
    )
    return await deliver(found, batch)
