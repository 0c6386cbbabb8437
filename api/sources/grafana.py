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
from pydantic import Field

from api.common import ApiError, json_body, services, validated
from api.intake import NotificationFields, TemplateAlert, build_batch, deliver

router = APIRouter()


class GrafanaAlert(TemplateAlert):
    silenceURL: str = ""
    dashboardURL: str = ""
    panelURL: str = ""
    values: dict[str, float] | None = None


class GrafanaPayload(NotificationFields):
    """Unknown fields are accepted and ignored."""

    version: Literal["1"]
    orgId: int = Field(ge=0, le=2**53)
    title: str = ""
    state: str = ""
    message: str = ""
    alerts: list[GrafanaAlert] = Field(min_length=1)


@router.post("/v1/alerts/grafana", status_code=202)
async def grafana_webhook(request: Request) -> dict[str, Any]:
    body = await json_body(request)
    if isinstance(body, dict) and "version" in body and body["version"] != "1":
        raise ApiError(422, "unsupported_version", f'payload version must be "1", got {body["version"]!r}')
    payload = validated(GrafanaPayload, body)
    found = services(request)
    group = f"grafana/{payload.orgId}:{payload.groupKey}"
    batch = build_batch(found.settings, "grafana", payload, payload.alerts, group, datetime.now(UTC))
    return await deliver(found, batch)
