"""worker.sandbox: a new workflow instance neither compiles its module again nor reloads the helpers."""

from __future__ import annotations

import importlib._bootstrap_external as bootstrap
import inspect
import json
import sys
import traceback
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from worker.sandbox import sandbox_runner
from workflows.incident import IncidentWorkflow

HISTORY = Path(__file__).parents[1] / "pipeline" / "histories" / "rollback_verified.json"
WORKFLOWS = Path(inspect.getfile(IncidentWorkflow)).parent


async def _compiles_over_replays(
    runner: SandboxedWorkflowRunner, monkeypatch: pytest.MonkeyPatch, replays: int = 3
) -> Counter[str]:
    """How often each file of workflows/ was compiled from source for the sandbox while `replays` runs
    were replayed (each a new instance in a fresh sandbox), with no bytecode of workflows/ to read,
    as under PYTHONDONTWRITEBYTECODE. (The worker's build id, which reads the workflow module's code
    once per worker, is not counted.)"""
    compiled: Counter[str] = Counter()
    real_compile = bootstrap.SourceLoader.source_to_code
    real_cache = bootstrap.cache_from_source

    def counting(self: Any, data: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        if not any(frame.name == "load_default_build_id" for frame in traceback.extract_stack()):
            compiled[Path(str(path)).name] += 1
        return real_compile(self, data, path, *args, **kwargs)

    def no_bytecode_of_workflows(path: Any, *args: Any, **kwargs: Any) -> str:
        if Path(str(path)).parent == WORKFLOWS:
            raise NotImplementedError
        return real_cache(path, *args, **kwargs)

    monkeypatch.setattr(bootstrap.SourceLoader, "source_to_code", counting)
    monkeypatch.setattr(bootstrap, "cache_from_source", no_bytecode_of_workflows)
    history = json.loads(HISTORY.read_text())

    async def histories() -> AsyncIterator[WorkflowHistory]:
        for index in range(replays):
            yield WorkflowHistory.from_json(f"sandbox-{index}", history)

    replayer = Replayer(
        workflows=[IncidentWorkflow], data_converter=pydantic_data_converter, workflow_runner=runner
    )
    async with replayer.workflow_replay_iterator(histories()) as results:
        async for result in results:
            assert result.replay_failure is None
    return compiled


async def test_the_workflow_module_is_compiled_once_and_helpers_not_at_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled = await _compiles_over_replays(sandbox_runner([IncidentWorkflow]), monkeypatch)
    assert compiled["incident.py"] <= 1, compiled
    assert compiled["gitops.py"] == 0, compiled


async def test_the_default_sandbox_compiles_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the test above guards against: the count it makes does see every fresh import.
    monkeypatch.setattr(
        sys, "meta_path", [f for f in sys.meta_path if type(f).__module__ != "worker.sandbox"]
    )
    compiled = await _compiles_over_replays(SandboxedWorkflowRunner(), monkeypatch)
    assert compiled["incident.py"] >= 3, compiled
    assert compiled["gitops.py"] >= 3, compiled
