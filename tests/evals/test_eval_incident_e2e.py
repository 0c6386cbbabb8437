"""Acceptance 4 end to end: a scheduled-style eval after a bad model deploy opens a real IncidentWorkflow
whose bundle carries the eval_score series and the recorded model change.

Uses the real worker registry: IncidentWorkflow, EvalWorkflow and every activity, including the
integrator's `open_or_join_incident`.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.changes_store import ChangeStore
from config import load_settings
from evals.contracts import EvalWorkflowInput
from incidents.bundle import Change, IncidentBundle
from tests.fixtures.simservice import SimService
from worker import registry
from worker.temporal_server import TemporalDevServer
from workflows.eval import EvalWorkflow

SHIPPED = Path(__file__).resolve().parents[2] / "evals" / "sets" / "orbitdesk" / "manifest.yaml"
pytestmark = pytest.mark.temporal


async def test_eval_regression_opens_incident_with_series_and_change(
    temporal_server: TemporalDevServer,
    simservice: SimService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = f"e2e-{uuid.uuid4().hex[:8]}"
    state_dir = tmp_path / "state"
    for name, value in {
        "BACKOUT_STATE_DIR": str(state_dir),
        "BACKOUT_TEMPORAL_ADDRESS": temporal_server.address,
        "BACKOUT_TASK_QUEUE": queue,
        "BACKOUT_INCIDENT_SETTLE_S": "0.2",
        "BACKOUT_INCIDENT_COOLDOWN_S": "0",
        "BACKOUT_ALLOWED_NAMESPACES": "demo",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BACKOUT_KUBECONFIG", raising=False)
    monkeypatch.delenv("BACKOUT_PROMETHEUS_URL", raising=False)
    settings = load_settings()
    client = await Client.connect(temporal_server.address, data_converter=pydantic_data_converter)
    request = EvalWorkflowInput(manifest_path=str(SHIPPED), state_dir=str(state_dir), endpoint=simservice.url)
    simservice.deploy(model_version="llm-v1", prompt_version="prompt-v1", corpus_version="corpus-v1")

    async def run_eval() -> object:
        return await client.execute_workflow(
            EvalWorkflow.run,
            request,
            id=f"eval-e2e-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
            execution_timeout=timedelta(minutes=5),
        )

    with ThreadPoolExecutor(max_workers=8) as executor:
        async with Worker(
            client,
            task_queue=queue,
            workflows=registry.workflows(),
            activities=registry.activities(settings),
            activity_executor=executor,
        ):
            for _ in range(3):
                await run_eval()  # the first three runs become the baseline
            deployed_at = datetime.now(UTC)
            store = ChangeStore(settings.change_store_file)
            try:
                store.put(
                    Change(
                        id="chg-model-v2",
                        service="rag-api",
                        namespace="demo",
                        kind="model",
                        started_at=deployed_at,
                        from_version="llm-v1",
                        to_version="llm-v2-bad",
                        description="deploy llm-v2-bad",
                        rollback={"type": "deployment", "name": "rag-api", "namespace": "demo"},
                    ),
                    received_at=deployed_at,
                )
            finally:
                store.close()
            simservice.deploy(model_version="llm-v2-bad")
            try:
                result = await run_eval()
            finally:
                simservice.deploy(model_version="llm-v1")
            incident_id = getattr(result, "incident_id", None)
            assert getattr(result, "regression", False) and incident_id, result

            incident = client.get_workflow_handle(incident_id)
            bundle: IncidentBundle | None = None
            for _ in range(150):
                bundle = await incident.query("bundle", result_type=IncidentBundle)
                if bundle is not None:
                    break
                await asyncio.sleep(0.1)
            try:
                await incident.terminate("test finished")
            except Exception:
                pass  # it may already have finished on its own

    assert bundle is not None
    assert bundle.incident.source == "eval" and bundle.incident.service == "rag-api"
    eval_series = [series for series in bundle.metrics if series.name == "eval_score"]
    assert len(eval_series) == 1 and len(eval_series[0].points) == 4
    assert eval_series[0].points[-1][1] < eval_series[0].points[0][1] - 0.2
    assert [change.id for change in bundle.changes] == ["chg-model-v2"]
