"""The incident workflow's own decisions, on a real Temporal server with the real worker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.client import Client

from incidents.models import IncidentView, OpenIncidentRequest
from incidents.service import IncidentBehaviour, open_or_join
from tests.fixtures.temporal import running_worker
from tests.pipeline.payloads import alert, notification
from worker.alertmanager import AlertmanagerPayload
from worker.settings import Settings

pytestmark = pytest.mark.temporal


def _request(body: dict[str, object]) -> OpenIncidentRequest:
    payload = AlertmanagerPayload.model_validate(body)
    key = payload.incident_key()
    return OpenIncidentRequest(
        namespace=key.namespace,
        service=key.service,
        group=key.group,
        signal=payload.to_signal(datetime.now(UTC)),
    )


async def test_alert_resolved_before_the_decision_is_never_acted_on(
    temporal_client: Client, backout_settings: Settings
) -> None:
    settings = backout_settings.model_copy(update={"incident_settle_s": 2.0})
    handle = await open_or_join(
        temporal_client,
        IncidentBehaviour(settings),
        _request(notification([alert(service="flap")], group="flap")),
    )
    resolved = _request(notification([alert(service="flap", status="resolved")], group="flap"))
    await handle.signal("add_signal", resolved.signal)
    async with running_worker(temporal_client, settings):
        view = IncidentView.model_validate(await handle.result())
    assert view.state == "resolved_before_action"
    assert not [record for record in view.actions if record.action in {"rollback", "pause_rollout", "scale"}]
    assert "every alert resolved before the decision: nothing done" in [e.message for e in view.timeline]


async def test_an_incident_nobody_can_explain_pages_a_human(
    temporal_client: Client, backout_settings: Settings
) -> None:
    handle = await open_or_join(
        temporal_client,
        IncidentBehaviour(backout_settings),
        _request(notification([alert(name="MysteryAlert", service="nobody")], group="nobody")),
    )
    async with running_worker(temporal_client, backout_settings):
        view = IncidentView.model_validate(await handle.result())
    assert view.state == "needs_human"
    assert view.decision is not None and view.decision.runbook is None
    assert any(e.kind == "error" and "no runbook matched" in e.message for e in view.timeline)
    assert view.summary, "the page carries a root-cause summary"
