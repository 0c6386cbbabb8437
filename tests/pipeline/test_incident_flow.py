"""The incident workflow's own decisions, on a real Temporal server with the real worker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from temporalio.client import Client

from activities.incidents import IncidentBehaviour, open_or_join
from config import Settings
from incidents.models import IncidentView
from tests.fixtures.temporal import running_worker
from tests.pipeline.payloads import alert, notification, open_request

pytestmark = pytest.mark.temporal


async def test_alert_resolved_before_the_decision_is_never_acted_on(
    temporal_client: Client, backout_settings: Settings
) -> None:
    settings = backout_settings.model_copy(update={"incident_settle_s": 2.0})
    handle = await open_or_join(
        temporal_client,
        IncidentBehaviour(settings),
        open_request("flap"),
    )
    resolved = open_request("flap", status="resolved")
    await handle.signal("add_signal", resolved.signal)
    async with running_worker(temporal_client, settings):
        view = IncidentView.model_validate(await asyncio.wait_for(handle.result(), timeout=120))
    assert view.state == "resolved_before_action"
    assert not [record for record in view.actions if record.action in {"rollback", "pause_rollout", "scale"}]
    assert "every alert resolved before the decision: nothing done" in [e.message for e in view.timeline]


async def test_an_incident_nobody_can_explain_pages_a_human(
    temporal_client: Client, backout_settings: Settings
) -> None:
    handle = await open_or_join(
        temporal_client,
        IncidentBehaviour(backout_settings),
        open_request("nobody", name="MysteryAlert"),
    )
    async with running_worker(temporal_client, backout_settings):
        view = IncidentView.model_validate(await asyncio.wait_for(handle.result(), timeout=120))
    assert view.state == "needs_human"
    assert view.decision is not None and view.decision.runbook is None
    assert any(e.kind == "error" and "no runbook matched" in e.message for e in view.timeline)
    assert view.summary, "the page carries a root-cause summary"


async def test_operator_feedback_on_the_culprit_is_stored_for_training(
    temporal_client: Client, backout_settings: Settings
) -> None:
    import httpx

    from api.app import create_app
    from worker.temporal_client import connect

    app = create_app(backout_settings, lambda: connect(backout_settings))
    change = {
        "id": "chg-prompt-9",
        "service": "labelled",
        "namespace": "prod",
        "kind": "prompt",
        "started_at": datetime.now(UTC).isoformat(),
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://backout") as http:
        assert (await http.post("/v1/changes", json=change)).status_code == 201
        body = notification([alert(service="labelled")], group="labelled")
        incident_id = (await http.post("/v1/alerts/alertmanager", json=body)).json()["incident_id"]
        async with running_worker(temporal_client, backout_settings):
            await asyncio.wait_for(temporal_client.get_workflow_handle(incident_id).result(), timeout=120)
            confirmed = await http.post(
                f"/v1/incidents/{incident_id}/culprit", json={"change_id": "chg-prompt-9"}
            )
            unknown = await http.post(f"/v1/incidents/{incident_id}/culprit", json={"change_id": "chg-nope"})
            missing = await http.post(
                "/v1/incidents/incident-none/culprit", json={"change_id": "chg-prompt-9"}
            )
    assert confirmed.status_code == 201, confirmed.text
    assert unknown.status_code == 400 and "chg-nope" in unknown.json()["detail"]
    assert missing.status_code == 404
    lines = backout_settings.feedback_file.read_text().splitlines()
    assert (
        len(lines) == 1 and '"chg-prompt-9"' in lines[0] and '"confirmed":true' in lines[0].replace(" ", "")
    )
