"""Degraded evidence, bounded delay (issue 13): Prometheus away, too slow or answering garbage while
an incident collects its context costs at most the query timeout, is noted, and the runbook
decides on what is known: it sees which evidence is missing (`evidence.missing`).

Real parts: the alert goes through `backout api` (a process of its own) to Temporal and the real
worker; a real HTTP server on loopback plays the broken Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr
from temporalio.client import Client

from activities.prometheus import QueryBudget
from config import EvidenceQuery, Settings
from devstack.receivers.server import ReceiverServer
from incidents.models import IncidentView
from tests.fixtures.temporal import backout_process, running_worker, stop_process, wait_healthy
from tests.pipeline.payloads import alert, notification
from worker.temporal_server import free_port

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

RUNBOOKS = Path(__file__).parent / "evidence_runbooks"
SENDER_TOKEN = "sender-token-for-the-evidence-tests"
QUERY_TIMEOUT_S = 2.0
QUERIES = [
    EvidenceQuery(
        name="error_rate", query='sum(rate(http_errors_total{service="{service}"}[1m]))', bad_direction="up"
    ),
    EvidenceQuery(
        name="latency_p99",
        query='histogram_quantile(0.99, rate(latency_bucket{service="{service}"}[1m]))',
        bad_direction="up",
    ),
]


class BrokenPrometheus:
    """An HTTP server on loopback that answers /api/v1/query_range badly, counting the requests."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.requests = 0
        self.done = threading.Event()  # ends a slow answer at teardown
        app = FastAPI()
        app.get("/api/v1/query_range")(self.query_range)
        self.server = ReceiverServer(app)
        self.url = self.server.url

    async def query_range(self, request: Request) -> Response:
        self.requests += 1
        if self.behaviour == "slow":
            await asyncio.to_thread(self.done.wait, 60)  # far past the query timeout
        body = b'\x00\xffthis is not the Prometheus API {"status": "succ'
        return Response(content=body, media_type="application/json")


@contextlib.contextmanager
def broken_prometheus(behaviour: str) -> Iterator[tuple[str, BrokenPrometheus | None]]:
    """A Prometheus that is down (a closed port: no server), slow, or answering garbage."""
    if behaviour == "down":
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        yield f"http://127.0.0.1:{port}", None  # closed: connections are refused
        return
    server = BrokenPrometheus(behaviour)
    server.server.start()
    try:
        yield server.url, server
    finally:
        server.done.set()
        server.server.stop()


def _alert_body(service: str, namespace: str) -> dict[str, object]:
    starts = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return notification(
        [alert(name="EvidenceDrill", service=service, namespace=namespace, starts_at=starts)], group=service
    )


async def _incident_through_the_api(settings: Settings, client: Client, service: str) -> IncidentView:
    process = backout_process(settings, "api", log_name="api.log")
    url = f"http://127.0.0.1:{settings.api_port}"
    try:
        await wait_healthy(url, process, settings.state_dir / "api.log")
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            answer = await http.post(
                "/v1/alerts/alertmanager",
                json=_alert_body(service, "prod"),
                headers={"Authorization": f"Bearer {SENDER_TOKEN}"},
            )
            assert answer.status_code == 202, answer.text
            incident_id = answer.json()["incident_id"]
        handle = client.get_workflow_handle(incident_id)
        return IncidentView.model_validate(await asyncio.wait_for(handle.result(), timeout=120))
    finally:
        stop_process(process)


@pytest.mark.parametrize(
    ("behaviour", "why"),
    [
        ("down", "unreachable"),
        ("slow", f"did not answer within {QUERY_TIMEOUT_S:g}s"),
        ("garbage", "not JSON"),
    ],
)
async def test_a_broken_prometheus_gives_a_decision_with_the_missing_evidence_named(
    behaviour: str, why: str, temporal_client: Client, backout_settings: Settings
) -> None:
    with broken_prometheus(behaviour) as (url, server):
        settings = backout_settings.model_copy(
            update={
                "prometheus_url": url,
                "evidence_queries": QUERIES,
                "prometheus_timeout_s": QUERY_TIMEOUT_S,
                "runbook_dir": RUNBOOKS,
                "api_port": free_port(),
                "sender_token": SecretStr(SENDER_TOKEN),
                "allowed_namespaces": ["prod"],
            }
        )
        async with running_worker(temporal_client, settings):
            view = await _incident_through_the_api(settings, temporal_client, f"evidence-{behaviour}")
    timeline = "\n".join(f"{e.kind} {e.step}: {e.message}" for e in view.timeline)

    # A decision, taken on what is known: the runbook saw the error-rate evidence missing.
    assert view.decision is not None and view.decision.runbook == "evidence-gap", timeline
    [first] = [step for step in view.decision.path if step.node == "error_rate_known"]
    assert first.value is True, view.decision.path
    assert view.state == "needs_human", timeline
    assert any(r.message == "Error-rate evidence missing; backout did not act." for r in view.actions)
    # The timeline names what is missing and why.
    notes = [e.message for e in view.timeline if e.kind == "note" and e.step == "collect"]
    assert any(n.startswith("evidence error_rate missing:") and why in n for n in notes), timeline
    assert any(n.startswith("evidence latency_p99 missing:") for n in notes), timeline
    if behaviour == "slow":
        # Bounded: once Prometheus was too slow the second query was not sent (one wait, not two).
        assert server is not None and server.requests == 1
        assert any("latency_p99 missing: not sent:" in n for n in notes), timeline
    if behaviour == "garbage":
        assert server is not None and server.requests == 2  # it answers, so each query is asked


def test_a_spent_evidence_budget_sends_no_more_queries() -> None:
    now = [0.0]
    budget = QueryBudget(timeout_s=5.0, budget_s=10.0, clock=lambda: now[0])
    now[0] = 9.8  # earlier queries took the budget
    start = datetime(2026, 12, 1, tzinfo=UTC)
    assert budget.range("http://127.0.0.1:9", "error_rate", "up", start, start, 15.0) is None
    assert budget.missing == {"error_rate": "not sent: the evidence budget of 10s is spent"}
    assert budget.notes() == ["evidence error_rate missing: not sent: the evidence budget of 10s is spent"]
