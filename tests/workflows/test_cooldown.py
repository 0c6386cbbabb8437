"""The cool-down after a recovery the golden set verified: an alert with a slower window (an
average over minutes still holding the bad samples) that fires then is asked about with the golden
set once more. While the set holds, the incident stays recovered; an alert still firing when the
cool-down ends, or a golden set regressed again, hands the incident to a human.

The real IncidentWorkflow and runbook loader on a real Temporal server; the context, attribution,
remediation, rollout, golden-set and paging activities are stand-ins (tests/workflows/test_hot_path.py)
whose golden-set answer each test chooses.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from incidents.models import (
    Alert,
    EvalRecheckRequest,
    EvalSymptom,
    IncidentSignal,
    IncidentView,
)
from incidents.remediation import VerificationResult, VerifyRequest
from tests.runbooks.incident_runs import incident_params, start_incident
from tests.workflows.test_hot_path import NAMESPACE, _patches, _replays, standins
from worker.sandbox import sandbox_runner
from worker.temporal_server import TemporalDevServer
from workflows.incident import LAGGING_ALERT_PATCH, REFIRE_BEFORE_COOLDOWN_PATCH, IncidentWorkflow

pytestmark = [pytest.mark.temporal, pytest.mark.timeout(120)]

COOLDOWN_S = 8.0
MANIFEST = "rag-golden"

ROLLBACK_AND_VERIFY = """
name: cooldown-rollback
mode: auto
match:
  sources: [eval]
start: roll_back
nodes:
  roll_back:
    actions:
      - rollback:
          kinds: [image]
      - wait_verify:
          duration: 0s
          timeout: 30s
"""


def _symptom(candidate: float) -> EvalSymptom:
    baseline = 0.95
    return EvalSymptom(
        manifest=MANIFEST,
        service="placeholder",
        run_id=uuid.uuid4().hex[:8],
        baseline=baseline,
        candidate=candidate,
        delta=candidate - baseline,
        regression=candidate < 0.9,
        observed_at=datetime.now(UTC),
    )


class GoldenSet:
    """The stand-in golden set: `answers` in order (the last one repeats); `asked` counts."""

    def __init__(self, *answers: float) -> None:
        self.answers = list(answers)
        self.asked = 0

    def activities(self) -> list[Any]:
        golden = self

        @activity.defn(name="recheck_eval")
        async def recheck_eval(request: EvalRecheckRequest) -> EvalSymptom:
            answer = golden.answers[min(golden.asked, len(golden.answers) - 1)]
            golden.asked += 1
            return _symptom(answer)

        @activity.defn(name="verify_rollout")
        async def verify_rollout(request: VerifyRequest) -> VerificationResult:
            return VerificationResult(outcome="Successful", message="rolled out")

        return [recheck_eval, verify_rollout]


def _alert(status: str, service: str) -> IncidentSignal:
    now = datetime.now(UTC)
    labels = {"alertname": "RagRetrievalPrecisionLow", "severity": "warning", "service": service}
    return IncidentSignal(
        source="alertmanager",
        received_at=now,
        alerts=[Alert(fingerprint="fp-precision", status=status, labels=labels, starts_at=now)],  # type: ignore[arg-type]
    )


async def _in_cooldown(handle: WorkflowHandle[Any, Any]) -> None:
    """Until the workflow waits out its cool-down: a timer of exactly COOLDOWN_S is started."""
    cooldown = timedelta(seconds=COOLDOWN_S)
    for _ in range(600):
        history = await handle.fetch_history()
        for event in history.events:
            timer = event.timer_started_event_attributes
            if (
                event.HasField("timer_started_event_attributes")
                and timer.start_to_fire_timeout.ToTimedelta() == cooldown
            ):
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the incident never started its cool-down")


async def _incident(
    server: TemporalDevServer,
    tmp_path: Path,
    golden: GoldenSet,
    after_recovery: list[IncidentSignal],
    before_cooldown: list[IncidentSignal] | None = None,
) -> tuple[IncidentView, Any]:
    """An incident opened by a golden-set regression, rolled back and verified by the golden set;
    `before_cooldown` signals are sent while its recovery page is on its way (recovered, the
    cool-down not begun), `after_recovery` ones once it cools down (each after the golden set was
    asked about the one before, if it was)."""
    runbooks, calls, client, queue = await standins(server, ROLLBACK_AND_VERIFY, tmp_path, "rag")
    handles: list[WorkflowHandle[Any, Any]] = []

    pending = list(before_cooldown or [])

    async def signal_while_paging() -> None:
        while pending:  # the first channel's page sends them; the second one's adds nothing
            await handles[0].signal("add_signal", pending.pop(0))

    calls.before_page["recovered"] = signal_while_paging
    params = incident_params(
        NAMESPACE,
        calls.change.service,
        runbooks,
        source="eval",
        cooldown_s=COOLDOWN_S,
        eval_manifest=MANIFEST,
    )
    opening = IncidentSignal(source="eval", received_at=datetime.now(UTC), eval=_symptom(0.6))
    activities = [*calls.activities(), *golden.activities()]
    async with Worker(
        client,
        task_queue=queue,
        workflows=[IncidentWorkflow],
        activities=activities,
        workflow_runner=sandbox_runner([IncidentWorkflow]),  # as the worker runs them
    ):
        handle = await start_incident(client, queue, params, opening)
        handles.append(handle)
        if after_recovery:
            await _in_cooldown(handle)
        for signal in after_recovery:
            asked = golden.asked
            await handle.signal("add_signal", signal)
            if signal.alerts[0].status == "firing":
                for _ in range(600):
                    if (
                        golden.asked > asked
                        or (await handle.query(IncidentWorkflow.view)).state != "recovered"
                    ):
                        break
                    await asyncio.sleep(0.05)
        view = await asyncio.wait_for(handle.result(), timeout=60)
        history = await handle.fetch_history()
    return view, history


def _said(view: IncidentView, text: str) -> bool:
    return any(text in entry.message for entry in view.timeline)


async def test_a_lagging_alert_while_the_golden_set_holds_keeps_the_incident_recovered(
    temporal_server: TemporalDevServer, tmp_path: Path
) -> None:
    golden = GoldenSet(0.97)  # recovered at verification and still when asked again
    service_alerts = [_alert("firing", "rag"), _alert("resolved", "rag")]
    view, history = await _incident(temporal_server, tmp_path, golden, service_alerts)
    assert view.state == "recovered", [entry.message for entry in view.timeline]
    assert golden.asked == 2, "the golden set was not asked again about the alert"
    assert _said(view, "a lagging alert window; still cooling down")
    assert not _said(view, "not acting twice")
    assert LAGGING_ALERT_PATCH in _patches(history)
    await _replays(history)


async def test_an_alert_still_firing_when_the_cooldown_ends_goes_to_a_human(
    temporal_server: TemporalDevServer, tmp_path: Path
) -> None:
    golden = GoldenSet(0.97)
    view, history = await _incident(temporal_server, tmp_path, golden, [_alert("firing", "rag")])
    assert view.state == "needs_human"
    assert _said(view, "RagRetrievalPrecisionLow fired again after the recovery and still firing at the end")
    await _replays(history)


async def test_a_golden_set_regressed_again_is_the_symptom_back(
    temporal_server: TemporalDevServer, tmp_path: Path
) -> None:
    golden = GoldenSet(0.97, 0.6)  # recovered at verification, regressed when asked again
    view, history = await _incident(temporal_server, tmp_path, golden, [_alert("firing", "rag")])
    assert view.state == "needs_human"
    assert golden.asked == 2
    assert _said(view, "the symptom came back after the incident was handled")
    assert not _said(view, "lagging alert")
    await _replays(history)


async def test_an_alert_firing_before_the_cooldown_began_is_the_same_as_during_it(
    temporal_server: TemporalDevServer, tmp_path: Path
) -> None:
    """An alert that fires while the recovery is being paged (the state is recovered, the cool-down
    has not begun) is asked about at the start of the cool-down, not forgotten."""
    golden = GoldenSet(0.97)
    view, history = await _incident(
        temporal_server, tmp_path, golden, [], before_cooldown=[_alert("firing", "rag")]
    )
    assert view.state == "needs_human", [entry.message for entry in view.timeline]
    assert golden.asked == 2, "the alert that fired before the cool-down was never asked about"
    assert _said(view, "RagRetrievalPrecisionLow fired again after the recovery and still firing at the end")
    assert REFIRE_BEFORE_COOLDOWN_PATCH in _patches(history)
    await _replays(history)
