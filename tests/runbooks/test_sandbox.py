"""decide() runs inside a real Temporal workflow sandbox and gives the same decision as outside."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from runbooks.engine import decide
from runbooks.loader import load_runbooks
from tests.runbooks.decide_workflow import DecideWorkflow
from tests.runbooks.test_engine import context
from worker.temporal_server import TemporalDevServer


def test_engine_imports_only_stdlib_pydantic_and_own_modules() -> None:
    probe = (
        "import sys; before = set(sys.modules); import runbooks.engine; "
        "print('\\n'.join(sorted(m.split('.')[0] for m in set(sys.modules) - before)))"
    )
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    roots = set(output.split())
    third_party = {root for root in roots if root not in sys.stdlib_module_names and not root.startswith("_")}
    assert third_party <= {
        "pydantic",
        "pydantic_core",
        "typing_extensions",
        "annotated_types",
        "typing_inspection",
        "re2",  # label matchers: a linear-time engine, deterministic and without I/O (runbooks/regex.py)
        "incidents",
        "runbooks",
    }, third_party
    assert "yaml" not in roots and "temporalio" not in roots


@pytest.mark.temporal
async def test_decide_in_workflow_sandbox(temporal_server: TemporalDevServer) -> None:
    client = await Client.connect(temporal_server.address, data_converter=pydantic_data_converter)
    runbooks = load_runbooks()
    ctx = context(
        namespace="staging",
        alertname="RagRetrievalPrecisionBudgetBurn",
        kind="corpus",
        now=datetime(2026, 11, 25, 10, tzinfo=UTC),
    )
    queue = f"runbooks-sandbox-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[DecideWorkflow]):
        decision = await client.execute_workflow(
            DecideWorkflow.run,
            args=[runbooks, ctx],
            id=f"decide-{uuid.uuid4().hex}",
            task_queue=queue,
        )
    assert decision == decide(runbooks, ctx)
    assert decision.runbook == "rag-shadow-trial"
    assert {action.mode for action in decision.actions} == {"shadow"}
