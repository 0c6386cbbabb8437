"""The webhook against a real Temporal dev server: dedup, resolved signals, bad input, auth."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from api import intake
from api.app import create_app
from config import Settings
from tests.fixtures.temporal import running_worker
from tests.pipeline.payloads import alert, notification
from worker.temporal_client import connect

pytestmark = pytest.mark.temporal


async def _incident_ids(client: Client, settings: Settings) -> set[str]:
    ids: set[str] = set()
    query = f'WorkflowType = "IncidentWorkflow" AND TaskQueue = "{settings.task_queue}"'
    async for execution in client.list_workflows(query):
        ids.add(execution.id)
    return ids


async def _eventually_ids(client: Client, settings: Settings, expected: int) -> set[str]:
    ids: set[str] = set()
    for _ in range(100):
        ids = await _incident_ids(client, settings)
        if len(ids) >= expected:
            await asyncio.sleep(0.3)  # visibility is eventually consistent: look once more
            return await _incident_ids(client, settings)
        await asyncio.sleep(0.1)
    return ids


@pytest.fixture
async def api(backout_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    settings = backout_settings.model_copy(update={"incident_settle_s": 60.0})
    app = create_app(settings, lambda: connect(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://backout") as http:
        http.settings = settings  # type: ignore[attr-defined]
        yield http


async def test_storm_of_duplicates_opens_one_incident_per_group(
    api: httpx.AsyncClient, temporal_client: Client
) -> None:
    settings: Settings = api.settings  # type: ignore[attr-defined]
    groups = [f"svc-{i}" for i in range(5)]
    bodies: list[dict[str, Any]] = []
    for group in groups:
        body = notification([alert(service=group), alert(name="TTFTHigh", service=group)], group=group)
        bodies.extend([body] * 20)  # HA pair + retries + storm: the same notification many times
    responses = await asyncio.gather(*(api.post("/v1/alerts/alertmanager", json=b) for b in bodies))
    assert {r.status_code for r in responses} == {202}
    per_group = {r.json()["incident_id"] for r in responses}
    assert len(per_group) == len(groups)
    ids = await _eventually_ids(temporal_client, settings, len(groups))
    assert ids == per_group


async def test_resolved_alert_reaches_the_running_incident(
    api: httpx.AsyncClient, temporal_client: Client
) -> None:
    settings: Settings = api.settings  # type: ignore[attr-defined]
    firing = notification([alert(service="retriever")], group="retriever")
    opened = await api.post("/v1/alerts/alertmanager", json=firing)
    incident_id = opened.json()["incident_id"]
    resolved = notification([alert(service="retriever", status="resolved")], group="retriever")
    answer = await api.post("/v1/alerts/alertmanager", json=resolved)
    assert answer.status_code == 202 and answer.json()["incident_id"] == incident_id
    async with running_worker(temporal_client, settings):
        view = (await api.get(f"/v1/incidents/{incident_id}")).json()
    assert [a["status"] for a in view["alerts"]] == ["resolved"]
    messages = [entry["message"] for entry in view["timeline"]]
    assert "alert LLMErrorRateHigh firing -> resolved" in messages


async def test_resolved_only_notification_opens_nothing(
    api: httpx.AsyncClient, temporal_client: Client
) -> None:
    settings: Settings = api.settings  # type: ignore[attr-defined]
    body = notification([alert(service="lonely", status="resolved")], group="lonely")
    answer = await api.post("/v1/alerts/alertmanager", json=body)
    assert answer.status_code == 202
    assert answer.json() == {"incident_id": None, "status": "no open incident"}
    assert not any("lonely" in i for i in await _incident_ids(temporal_client, settings))


def _oversized() -> bytes:
    body = notification([alert()])
    body["commonAnnotations"] = {"blob": "x" * (1024 * 1024)}
    return json.dumps(body).encode()


MALFORMED: list[tuple[str, bytes, str, int, str]] = [
    ("not json", b"{not json", "application/json", 400, "malformed_json"),
    ("empty", b"", "application/json", 400, "empty_body"),
    (
        "wrong version",
        json.dumps({**notification([alert()]), "version": "3"}).encode(),
        "application/json",
        422,
        "unsupported_version",
    ),
    (
        "alerts not a list",
        json.dumps({**notification([alert()]), "alerts": "x"}).encode(),
        "application/json",
        422,
        "invalid_payload",
    ),
    (
        "missing groupKey",
        json.dumps({k: v for k, v in notification([alert()]).items() if k != "groupKey"}).encode(),
        "application/json",
        422,
        "invalid_payload",
    ),
    (
        "bad status",
        json.dumps(notification([alert(status="burning")])).encode(),
        "application/json",
        422,
        "invalid_payload",
    ),
    (
        "bad time",
        json.dumps(notification([{**alert(), "startsAt": "yesterday"}])).encode(),
        "application/json",
        422,
        "invalid_payload",
    ),
    (
        "no alerts",
        json.dumps({**notification([alert()]), "alerts": []}).encode(),
        "application/json",
        422,
        "invalid_payload",
    ),
    ("array body", b"[]", "application/json", 422, "invalid_payload"),
    (
        "form content type",
        json.dumps(notification([alert()])).encode(),
        "application/x-www-form-urlencoded",
        415,
        "unsupported_media_type",
    ),
    ("too large", _oversized(), "application/json", 413, "payload_too_large"),
]


@pytest.mark.parametrize(
    ("case", "raw", "content_type", "status", "error"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
async def test_malformed_webhooks_get_a_json_4xx(
    api: httpx.AsyncClient, case: str, raw: bytes, content_type: str, status: int, error: str
) -> None:
    response = await api.post("/v1/alerts/alertmanager", content=raw, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["detail"]


async def test_the_sender_token_is_required_when_configured(backout_settings: Settings) -> None:
    settings = backout_settings.model_copy(
        update={
            "sender_token": SecretStr("sender-token-0123456789"),
            "operator_token": SecretStr("operator-token-0123456789"),
            "allow_anonymous_loopback": False,
            "incident_settle_s": 60.0,
        }
    )
    app = create_app(settings, lambda: connect(settings))
    body = notification([alert(service="authz")], group="authz")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://backout") as http:
        missing = await http.post("/v1/alerts/alertmanager", json=body)
        wrong = await http.post(
            "/v1/alerts/alertmanager", json=body, headers={"Authorization": "Bearer nope"}
        )
        other_role = await http.post(
            "/v1/alerts/alertmanager",
            json=body,
            headers={"Authorization": "Bearer operator-token-0123456789"},
        )
        right = await http.post(
            "/v1/alerts/alertmanager", json=body, headers={"Authorization": "Bearer sender-token-0123456789"}
        )
    assert (missing.status_code, wrong.status_code, other_role.status_code, right.status_code) == (
        401,
        401,
        403,
        202,
    )
    assert missing.json()["error"] == "unauthorized"
    assert "sender" in other_role.json()["detail"]


async def test_unreachable_temporal_is_a_503_so_alertmanager_retries(backout_settings: Settings) -> None:
    settings = backout_settings.model_copy(update={"temporal_address": "127.0.0.1:1"})
    app = create_app(settings, lambda: connect(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://backout") as http:
        response = await http.post("/v1/alerts/alertmanager", json=notification([alert()]))
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.json()["error"] == "unavailable"


async def test_changes_are_stored_idempotently(api: httpx.AsyncClient) -> None:
    change = {
        "id": "chg-prompt-7",
        "service": "rag-api",
        "namespace": "prod",
        "kind": "prompt",
        "started_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "from_version": "prompt-v6",
        "to_version": "prompt-v7",
    }
    first = await api.post("/v1/changes", json=change)
    again = await api.post("/v1/changes", json=change)
    conflict = await api.post("/v1/changes", json={**change, "to_version": "prompt-v8"})
    invalid = await api.post("/v1/changes", json={**change, "started_at": "soon"})
    assert (first.status_code, again.status_code, conflict.status_code, invalid.status_code) == (
        201,
        200,
        409,
        422,
    )
    assert "started_at" in invalid.json()["detail"]
    listed = await api.get("/v1/changes", params={"since_s": 30 * 86400})
    assert [c["id"] for c in listed.json()["changes"]] == ["chg-prompt-7"]


async def test_ha_twins_are_absorbed_but_a_flap_is_delivered_in_full(
    api: httpx.AsyncClient, temporal_client: Client
) -> None:
    settings: Settings = api.settings  # type: ignore[attr-defined]
    firing = notification([alert(service="flappy")], group="flappy")
    resolved = notification([alert(service="flappy", status="resolved")], group="flappy")
    statuses = []
    for body in (firing, firing, resolved, resolved, firing):
        response = await api.post("/v1/alerts/alertmanager", json=body)
        assert response.status_code == 202
        statuses.append(response.json()["status"])
    assert statuses == ["accepted", "duplicate", "resolved", "duplicate", "accepted"]
    incident_id = (await api.post("/v1/alerts/alertmanager", json=firing)).json()["incident_id"]
    async with running_worker(temporal_client, settings):
        view = (await api.get(f"/v1/incidents/{incident_id}")).json()
    messages = [entry["message"] for entry in view["timeline"] if entry["kind"] == "signal"]
    assert messages == [
        "alert LLMErrorRateHigh firing",
        "alert LLMErrorRateHigh firing -> resolved",
        "alert LLMErrorRateHigh resolved -> firing",
    ]


async def test_health_says_whether_a_worker_polls_the_task_queue(
    api: httpx.AsyncClient, temporal_client: Client
) -> None:
    settings: Settings = api.settings  # type: ignore[attr-defined]
    alone = (await api.get("/healthz")).json()
    assert alone["temporal"] == "ok"
    assert alone["worker"] == f"no worker polls task queue {settings.task_queue}"
    health: dict[str, Any] = {}
    async with running_worker(temporal_client, settings):
        for _ in range(100):
            health = (await api.get("/healthz")).json()
            if health["worker"] == "ok":
                break
            await asyncio.sleep(0.1)
    assert health["worker"] == "ok"


@pytest.fixture
def slow_first_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real signal-with-start, a moment late: an HA twin posted with it arrives while it is in flight."""
    real = intake.open_or_join

    async def late(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.3)
        return await real(*args, **kwargs)

    monkeypatch.setattr(intake, "open_or_join", late)


async def test_a_twin_in_flight_does_not_count_against_its_incidents_budget(
    backout_settings: Settings, slow_first_delivery: None
) -> None:
    """One notification a minute for the incident: its HA twin, arriving while the first is on its way
    to Temporal, rides on it (202, duplicate) instead of being the second notification of the minute."""
    settings = backout_settings.model_copy(update={"max_notifications_per_incident_per_minute": 1})
    app = create_app(settings, lambda: connect(settings))
    body = notification([alert(service="budgeted")], group="budgeted")
    twin = {**body, "externalURL": "http://alertmanager-1:9093"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://backout") as http:
        answers = await asyncio.gather(
            http.post("/v1/alerts/alertmanager", json=body), http.post("/v1/alerts/alertmanager", json=twin)
        )
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    assert sorted(a.json()["status"] for a in answers) == ["accepted", "duplicate"]


async def test_a_twin_is_answered_without_building_its_signal(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, slow_first_delivery: None
) -> None:
    """The signal (every alert normalised and bounded) is built for the delivery that goes to Temporal
    only: neither a twin in flight nor a later retry of a delivered notification builds one."""
    real = intake.within_signal_budget
    built: list[int] = []

    def counted(alerts: list[Any]) -> Any:
        built.append(len(alerts))
        return real(alerts)

    monkeypatch.setattr(intake, "within_signal_budget", counted)
    body = notification([alert(service="twins"), alert(name="TTFTHigh", service="twins")], group="twins")
    twin = {**body, "externalURL": "http://alertmanager-1:9093"}
    answers = list(
        await asyncio.gather(
            api.post("/v1/alerts/alertmanager", json=body), api.post("/v1/alerts/alertmanager", json=twin)
        )
    )
    answers.append(await api.post("/v1/alerts/alertmanager", json=twin))
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert sorted(a.json()["status"] for a in answers) == ["accepted", "duplicate", "duplicate"]
    assert built == [2], f"signals built: {built}"
