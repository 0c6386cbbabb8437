"""Grafana alerting's webhook as an alert source: the API app and a real worker on a real Temporal
dev server. The payloads follow Grafana's documented webhook body (version "1")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from api.app import create_app
from config import Settings
from incidents.models import IncidentView
from runbooks.lint import lint_text
from tests.fixtures.temporal import running_worker
from worker.temporal_client import connect

pytestmark = pytest.mark.temporal


def grafana(
    status: str = "firing", service: str = "rag-api", fingerprint: str = "c6eadffa33fcdf37"
) -> dict[str, Any]:
    labels = {
        "alertname": "RagAnswerQualityLow",
        "namespace": "prod",
        "service": service,
        "severity": "critical",
    }
    return {
        "receiver": "backout",
        "status": status,
        "orgId": 1,
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {
                    "summary": "answer quality below 0.7",
                    "runbook_url": "https://runbooks.local/rag",
                },
                "startsAt": "2026-11-27T09:51:03.157076+02:00",
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-27T10:20:00+02:00",
                "generatorURL": "https://grafana.local/alerting/grafana/abc123/view",
                "fingerprint": fingerprint,
                "silenceURL": "https://grafana.local/alerting/silence/new?matchers=alertname%3DRagAnswerQualityLow",
                "dashboardURL": "https://grafana.local/d/rag",
                "panelURL": "https://grafana.local/d/rag?viewPanel=4",
                "values": {"B": 0.61, "C": 1},
            }
        ],
        "groupLabels": {"alertname": "RagAnswerQualityLow"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "answer quality below 0.7"},
        "externalURL": "https://grafana.local/",
        "version": "1",
        "groupKey": '{}:{alertname="RagAnswerQualityLow"}',
        "truncatedAlerts": 0,
        "title": "[FIRING:1] RagAnswerQualityLow prod rag-api",
        "state": "alerting",
        "message": "**Firing**\n\nValue: B=0.61",
    }


@pytest.fixture
async def api(backout_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(backout_settings, lambda: connect(backout_settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://backout") as http:
        yield http


async def test_a_grafana_alert_opens_one_incident_and_its_resolution_reaches_it(
    api: httpx.AsyncClient, temporal_client: Client, backout_settings: Settings
) -> None:
    answers = await asyncio.gather(*(api.post("/v1/alerts/grafana", json=grafana()) for _ in range(4)))
    assert {answer.status_code for answer in answers} == {202}
    [incident_id] = {answer.json()["incident_id"] for answer in answers}
    assert sorted(answer.json()["status"] for answer in answers) == [
        "accepted",
        "duplicate",
        "duplicate",
        "duplicate",
    ]
    resolved = await api.post("/v1/alerts/grafana", json=grafana("resolved"))
    assert resolved.status_code == 202 and resolved.json() == {
        "incident_id": incident_id,
        "status": "resolved",
    }

    async with running_worker(temporal_client, backout_settings):
        view = IncidentView.model_validate(
            await asyncio.wait_for(temporal_client.get_workflow_handle(incident_id).result(), timeout=120)
        )
    assert (view.source, view.service, view.namespace) == ("grafana", "rag-api", "prod")
    [alert] = view.alerts
    assert (alert.fingerprint, alert.status) == ("c6eadffa33fcdf37", "resolved")
    assert alert.generator_url == "https://grafana.local/alerting/grafana/abc123/view"
    assert view.state == "resolved_before_action"


async def test_grafana_payload_problems_are_named(api: httpx.AsyncClient) -> None:
    wrong_version = await api.post("/v1/alerts/grafana", json={**grafana(), "version": "4"})
    assert wrong_version.status_code == 422 and wrong_version.json()["error"] == "unsupported_version"
    no_org = grafana()
    del no_org["orgId"]
    missing = await api.post("/v1/alerts/grafana", json=no_org)
    assert missing.status_code == 422 and "orgId" in missing.json()["detail"]
    garbled = await api.post(
        "/v1/alerts/grafana", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert garbled.status_code == 400 and garbled.json()["error"] == "malformed_json"


def test_a_runbook_may_match_grafana_alerts() -> None:
    runbook = """\
name: grafana-quality
mode: shadow
match:
  sources: [grafana]
start: page
nodes:
  page:
    actions:
      - page: {severity: critical}
"""
    result = lint_text(runbook, "grafana.yaml")
    assert result.problems == [] and result.runbook is not None
    assert result.runbook.match.sources == ["grafana"]
