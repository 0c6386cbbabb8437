"""Upgrade safety: every committed workflow history replays on the current code.

The histories (tests/pipeline/histories/) were recorded on real parts by
tests/pipeline/record_histories.py, one per path an incident can take, and are never re-recorded:
a change of the workflows' command sequence is guarded with `workflow.patched` instead, so an
incident started by the previous release finishes on this one.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.eval import EvalWorkflow
from workflows.incident import IncidentWorkflow

HISTORIES = Path(__file__).parent / "histories"

# Every path of an incident, the history that records it and the state the incident ended in.
PATHS: dict[str, str] = {
    "approve": "recovered",
    "reject": "needs_human",
    "approval_timeout_escalate": "needs_human",
    "rollback_verified": "recovered",
    "verify_failed_escalate": "needs_human",
    "shadow": "shadowed",
    "freeze_window": "needs_human",
    "rollback_cap_reached": "needs_human",
    "resolved_before_action": "resolved_before_action",
    "no_change_needs_human": "needs_human",
    "eval_trigger": "recovered",
}


def _histories() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def _result(path: Path) -> dict[str, Any]:
    """The workflow's result, as the recorded run returned it."""
    last = json.loads(path.read_text())["events"][-1]
    attributes = last["workflowExecutionCompletedEventAttributes"]
    return dict(json.loads(base64.b64decode(attributes["result"]["payloads"][0]["data"])))


@pytest.mark.parametrize("path", _histories(), ids=lambda p: p.stem)
async def test_committed_history_replays_on_current_code(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    replayer = Replayer(workflows=[IncidentWorkflow, EvalWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.stem} no longer replays: {result.replay_failure}"


@pytest.mark.parametrize(("name", "state"), PATHS.items(), ids=list(PATHS))
def test_every_path_has_a_recorded_history(name: str, state: str) -> None:
    path = HISTORIES / f"{name}.json"
    assert path.exists(), f"no history for the {name} path: tests/pipeline/record_histories.py records it"
    assert _result(path)["state"] == state


def test_the_eval_trigger_history_opened_the_recorded_incident() -> None:
    opened = _result(HISTORIES / "eval_trigger_eval_workflow.json")
    incident = _result(HISTORIES / "eval_trigger.json")
    assert opened["regression"] is True
    assert opened["incident_id"] == incident["id"]
    assert incident["source"] == "eval"
