"""`backout incidents watch` against a real API, worker and Temporal dev server of its own.

A frame is rendered to text and read: the open incident with its step and latest line, a
finished one below, and the API's address. The server is this module's own, so the listing
holds only the incidents made here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from temporalio.client import Client
from typer.testing import CliRunner

from activities.incidents import IncidentBehaviour, open_or_join
from api.app import create_app
from config import Settings
from tests.fixtures.temporal import running_worker, settings_for, start_dev_server
from tests.pipeline.payloads import alert, notification, open_request
from worker.cli import app as cli
from worker.cli.watch import ApiClient, render_text, take_snapshot
from worker.temporal_client import connect
from worker.temporal_server import TemporalDevServer, free_port

pytestmark = pytest.mark.temporal

TOKEN = "watch-test-operator-token"
SENDER = "watch-test-sender-token"


@pytest.fixture(scope="module")
def own_temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    state = tmp_path_factory.mktemp("watch-temporal")
    server = start_dev_server(state / "temporal.sqlite", state / "log")
    yield server
    server.stop()


@dataclass
class Served:
    url: str
    temporal: Client
    settings: Settings


@contextlib.asynccontextmanager
async def _serve(temporal: TemporalDevServer, state: Path, **overrides: object) -> AsyncIterator[Served]:
    """The real API on a loopback port and the real worker, on `temporal`."""
    port = free_port()
    settings: Settings = settings_for(
        temporal,
        state,
        api_port=port,
        operator_token=TOKEN,
        sender_token=SENDER,
        allow_anonymous_loopback=False,
        public_url=f"http://127.0.0.1:{port}",
        **overrides,
    )
    client = await connect(settings, attempts=20)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, lambda: connect(settings)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,  # a query still waiting on an orphaned incident is not waited for
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with running_worker(client, settings):
            while not server.started:
                await asyncio.sleep(0.05)
            yield Served(f"http://127.0.0.1:{port}", client, settings)
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def served(own_temporal: TemporalDevServer, tmp_path: Path) -> AsyncIterator[Served]:
    """Incidents settle for a minute: they stay open, in their first step."""
    # One queue for the module's settling incidents: a later test's worker serves earlier ones.
    async with _serve(
        own_temporal, tmp_path / "state", incident_settle_s=60.0, task_queue="watch-tests"
    ) as served:
        yield served


async def _open_incident(url: str, service: str) -> str:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {SENDER}"}) as http:
        answer = await http.post(
            "/v1/alerts/alertmanager", json=notification([alert(service=service)], group=service)
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["incident_id"])


async def _frame_when(url: str, *wanted: str, timeout_s: float = 10.0) -> str:
    """A frame, once it shows every `wanted` text (the listing is eventually consistent)."""
    api = ApiClient(url, TOKEN, timeout_s=timeout_s)
    frame = ""
    try:
        for _ in range(150):
            frame = await asyncio.to_thread(lambda: render_text(take_snapshot(api, finished=5)))
            if all(text in frame for text in wanted):
                return frame
            await asyncio.sleep(0.2)
    finally:
        api.close()
    raise AssertionError(f"{wanted} never all showed:\n{frame}")


def _row(frame: str, incident_id: str) -> str:
    return next(line for line in frame.splitlines() if incident_id in line)


async def test_a_frame_shows_open_incidents_with_their_step_and_the_finished_below(served: Served) -> None:
    open_id = await _open_incident(served.url, "rag-api")
    done_id = await _open_incident(served.url, "retriever")
    await served.temporal.get_workflow_handle(done_id).terminate(reason="watch test: finished")
    frame = await _frame_when(served.url, "1 open incident(s)", "recently finished", "incident opened from")
    assert frame.index(open_id) < frame.index("recently finished") < frame.index(done_id)
    row = _row(frame, open_id)
    assert "rag-api (prod)" in row and " open " in row and "incident opened from alertmanager" in row
    assert "retriever" in _row(frame, done_id)
    assert f"{served.url} at " in frame and "error" not in frame


async def test_the_command_prints_one_frame_with_once(served: Served) -> None:
    open_id = await _open_incident(served.url, "gateway")
    await _frame_when(served.url, open_id, "incident opened from")
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["incidents", "watch", "--once", "--url", served.url],
        env={"BACKOUT_OPERATOR_TOKEN": TOKEN, "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert open_id in result.output and "gateway (prod)" in result.output


async def test_an_incident_whose_view_does_not_answer_costs_its_row_only(served: Served) -> None:
    """An incident on a task queue no worker serves: its query waits; the frame still comes."""
    orphan = served.settings.model_copy(update={"task_queue": "no-worker-here"})
    stuck = await open_or_join(served.temporal, IncidentBehaviour(orphan), open_request("orphaned"))
    healthy = await _open_incident(served.url, "healthy-svc")
    try:
        frame = await _frame_when(served.url, stuck.id, healthy, "incident opened from", timeout_s=1.0)
    finally:
        await served.temporal.get_workflow_handle(stuck.id).terminate(reason="watch test done")
    assert "view unavailable" in _row(frame, stuck.id)
    assert "incident opened from alertmanager" in _row(frame, healthy)


async def test_an_incident_handed_to_a_human_stays_on_the_watch_with_the_reason(
    own_temporal: TemporalDevServer, tmp_path: Path
) -> None:
    """needs_human is final for backout, not for the person on call: it stays in the open table."""
    async with _serve(
        own_temporal,
        tmp_path / "state",
        incident_settle_s=0.2,
        incident_cooldown_s=120.0,
        task_queue="watch-human",
    ) as served:
        incident_id = await _open_incident(served.url, "escalated-svc")
        frame = await _frame_when(served.url, "needs_human", "needs a human: ")
        row = _row(frame, incident_id)
        await served.temporal.get_workflow_handle(incident_id).terminate(reason="watch test done")
    assert incident_id in frame.split("recently finished")[0]  # in the open table
    assert "needs_human" in row and "needs a human: " in row


def test_an_unreachable_api_is_shown_in_the_frame_not_raised() -> None:
    api = ApiClient(f"http://127.0.0.1:{free_port()}", None, timeout_s=2.0)
    try:
        frame = render_text(take_snapshot(api))
    finally:
        api.close()
    assert "error: backout API at http://127.0.0.1:" in frame and "unreachable" in frame
    assert "0 open incident(s)" in frame
