"""EvalWorkflow on a real Temporal dev server against a real simservice process."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from activities.evals import EvalActivities
from config import Settings
from evals.contracts import EvalWorkflowInput, EvalWorkflowResult
from evals.golden import load_manifest
from evals.schedule import ensure_schedule
from evals.store import EvalStore
from incidents.models import OpenIncidentRequest
from tests.fixtures.simservice import SimService
from worker.temporal_server import TemporalDevServer
from workflows.eval import EvalWorkflow

SHIPPED = Path(__file__).resolve().parents[2] / "evals" / "sets" / "orbitdesk" / "manifest.yaml"
pytestmark = pytest.mark.temporal


class IncidentRecorder:
    """Stands in for the integrator's activity of the same name: records what it was asked to open."""

    def __init__(self) -> None:
        self.requests: list[OpenIncidentRequest] = []

    @activity.defn(name="open_or_join_incident")
    async def open_or_join_incident(self, request: OpenIncidentRequest) -> str:
        self.requests.append(request)
        return f"incident-{request.key.service}-{len(self.requests)}"


def _eval_activities(tmp_path: Path) -> list[Any]:
    evals = EvalActivities(Settings(state_dir=tmp_path / "state"))
    return [evals.run_golden_set, evals.evaluate_look, evals.recheck_eval]


async def _client(server: TemporalDevServer) -> Client:
    return await Client.connect(server.address, data_converter=pydantic_data_converter)


async def _run(
    client: Client, queue: str, request: EvalWorkflowInput, workflow_id: str | None = None
) -> EvalWorkflowResult:
    return await client.execute_workflow(
        EvalWorkflow.run,
        request,
        id=workflow_id or f"eval-test-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
        execution_timeout=timedelta(minutes=5),
    )


async def test_bad_model_version_opens_an_incident_with_the_eval_series(
    temporal_server: TemporalDevServer, simservice: SimService, tmp_path: Path
) -> None:
    simservice.deploy(model_version="llm-v1", prompt_version="prompt-v1", corpus_version="corpus-v1")
    client = await _client(temporal_server)
    queue = f"evals-{uuid.uuid4().hex[:8]}"
    recorder = IncidentRecorder()
    state_dir = tmp_path / "state"
    request = EvalWorkflowInput(manifest_path=str(SHIPPED), state_dir=str(state_dir), endpoint=simservice.url)
    async with Worker(
        client,
        task_queue=queue,
        workflows=[EvalWorkflow],
        activities=[*_eval_activities(tmp_path), recorder.open_or_join_incident],
    ):
        statuses = [(await _run(client, queue, request)).look_status for _ in range(3)]
        assert statuses == ["collecting_baseline", "collecting_baseline", "baseline_pinned"]
        steady = await _run(client, queue, request)
        assert steady.status == "ok" and steady.regression is False
        assert recorder.requests == []

        simservice.deploy(model_version="llm-v2-bad")
        broken_id = f"eval-test-broken-{uuid.uuid4().hex[:8]}"
        try:
            broken = await _run(client, queue, request, broken_id)
        finally:
            simservice.deploy(model_version="llm-v1")
        assert broken.status == "regression" and broken.incident_id == "incident-rag-api-1"
        assert broken.pass_rate is not None and broken.pass_rate < 0.7

        healed = await _run(client, queue, request)
        assert healed.status == "ok", healed

    # The run that opened the incident replays deterministically from its recorded history.
    recorded = await client.get_workflow_handle(broken_id).fetch_history()
    await Replayer(workflows=[EvalWorkflow], data_converter=pydantic_data_converter).replay_workflow(recorded)

    assert len(recorder.requests) == 1
    opened = recorder.requests[0]
    manifest = load_manifest(SHIPPED)
    assert (opened.key.service, opened.key.namespace, opened.key.group) == (
        "rag-api",
        "demo",
        "eval:orbitdesk-assistant",
    )
    assert opened.signal.source == "eval"
    symptom = opened.signal.eval
    assert symptom is not None and symptom.regression
    assert symptom.run_id == broken.run_id and symptom.manifest == manifest.name
    assert symptom.manifest_path == str(SHIPPED)  # what recheck_eval re-runs to verify recovery
    assert symptom.delta < -0.2 and symptom.p_value is not None and symptom.p_value < 0.05 / 100
    assert symptom.ci is not None and symptom.ci[1] < 0
    assert [value for _, value in symptom.series][-1] == pytest.approx(broken.pass_rate)
    assert len(symptom.series) == 5  # three baseline runs, one steady look, the broken look
    history = EvalStore(state_dir, manifest.name).history()
    assert [point.regression for point in history] == [None, None, None, False, True, False]


async def test_schedule_is_idempotent_and_runs_the_workflow(
    temporal_server: TemporalDevServer, simservice: SimService, tmp_path: Path
) -> None:
    client = await _client(temporal_server)
    queue = f"evals-{uuid.uuid4().hex[:8]}"
    manifest = load_manifest(SHIPPED).model_copy(update={"name": f"sched-{uuid.uuid4().hex[:6]}"})
    recorder = IncidentRecorder()
    first = await ensure_schedule(
        client, SHIPPED, manifest, timedelta(minutes=15), queue, tmp_path, simservice.url
    )
    second = await ensure_schedule(
        client, SHIPPED, manifest, timedelta(minutes=5), queue, tmp_path, simservice.url, trigger_now=True
    )
    assert (first.action, second.action) == ("created", "updated")
    handle = client.get_schedule_handle(first.schedule_id)
    try:
        description = await handle.describe()
        assert [spec.every for spec in description.schedule.spec.intervals] == [timedelta(minutes=5)]
        async with Worker(
            client,
            task_queue=queue,
            workflows=[EvalWorkflow],
            activities=[*_eval_activities(tmp_path), recorder.open_or_join_incident],
        ):
            started: list[str] = []
            for _ in range(100):
                description = await handle.describe()
                started = [
                    action.action.workflow_id
                    for action in description.info.recent_actions
                    if isinstance(action.action, ScheduleActionExecutionStartWorkflow)
                ]
                if started:
                    break
                await asyncio.sleep(0.1)
            assert started and started[0].startswith(first.schedule_id)
            result = await asyncio.wait_for(
                client.get_workflow_handle(started[0], result_type=EvalWorkflowResult).result(), timeout=120
            )
            assert result.look_status == "collecting_baseline" and result.pass_rate is not None
    finally:
        await handle.delete()
