"""Issue 12, finding "An incident can be wedged for good": on the main of the issue three 0.9 MB
notifications for one service made its workflow fail every task with PayloadsTooLarge (never
paged, its GET a 500), a storm of 6,000 small alerts made the incident view too large to return
(500), a runbook matcher with nested quantifiers backtracked inside the workflow until Temporal
reported a deadlock, and 80 nested parentheses crashed the expression parser."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from runbooks.lint import lint_text
from runbooks.models import Runbook
from tests.pipeline.payloads import alert, notification
from tests.runbooks.decide_workflow import DecideWorkflow
from tests.runbooks.test_engine import context
from tests.security.conftest import OPERATOR, SENDER, SecureStack, wait_for_state
from worker.temporal_server import TemporalDevServer

pytestmark = [pytest.mark.temporal]

DONE = {"needs_human", "no_action", "shadowed", "recovered", "resolved_before_action"}


def _huge(name: str, service: str) -> dict[str, Any]:
    """An alert whose labels and annotations make a notification of about 0.9 MB."""
    fired = alert(name=name, service=service)
    fired["labels"].update({f"label_{i:02d}": "l" * 6000 for i in range(30)})
    fired["annotations"] = {"description": "d" * 400_000, "runbook": "r" * 100_000}
    return fired


async def test_three_huge_notifications_do_not_wedge_the_incident(secure_stack: SecureStack) -> None:
    incident_id = None
    async with secure_stack.http(SENDER) as http:
        for name in ("HugeA", "HugeB", "HugeC"):
            body = notification([_huge(name, "wedge")], group="wedge")
            assert 800_000 < len(json.dumps(body)) < 1_000_000
            answer = await http.post("/v1/alerts/alertmanager", json=body)
            assert answer.status_code == 202, answer.text
            incident_id = answer.json()["incident_id"]
    assert incident_id is not None
    async with secure_stack.http(OPERATOR) as http:
        view = await wait_for_state(http, incident_id, DONE)
    assert view["state"] == "needs_human", "handled and handed to a human (no runbook matches)"
    assert len(view["alerts"]) == 3
    for kept in view["alerts"]:
        assert len(kept["labels"]) <= 48 and sum(len(k) + len(v) for k, v in kept["labels"].items()) <= 2048
        assert "backout.dev/truncated" in kept["annotations"]
        assert sum(len(v) for v in kept["annotations"].values()) <= 4096 + 512


async def test_a_storm_of_6000_alerts_keeps_the_incident_readable(secure_stack: SecureStack) -> None:
    incident_id = None
    async with secure_stack.http(SENDER) as http:
        for batch in range(6):
            alerts = [alert(name=f"Storm{batch}-{i}", service="storm6k") for i in range(1000)]
            answer = await http.post("/v1/alerts/alertmanager", json=notification(alerts, group="storm6k"))
            assert answer.status_code == 202, answer.text
            incident_id = answer.json()["incident_id"]
    assert isinstance(incident_id, str), incident_id
    async with secure_stack.http(OPERATOR) as http:
        view = await wait_for_state(http, incident_id, DONE)
        for _ in range(300):  # the six signals are in the incident's history; wait until it read them all
            if view["alerts_not_kept"] == 5900:
                break
            await asyncio.sleep(0.1)
            view = (await http.get(f"/v1/incidents/{incident_id}")).json()
        assert view["alerts_total"] == 100 and len(view["alerts"]) == 100
        assert view["alerts_not_kept"] == 5900
        assert view["timeline_total"] <= 300
        # Pages of the timeline, to the end (the incident may still be writing to it: the last page's
        # total is the one that counts).
        seen, total = 0, None
        while total is None or seen < total:
            page = await http.get(
                f"/v1/incidents/{incident_id}", params={"timeline_offset": seen, "timeline_limit": 50}
            )
            assert page.status_code == 200
            got = page.json()
            seen += len(got["timeline"])
            total = got["timeline_total"]
            assert total <= 300
        assert seen == total


NESTED_QUANTIFIERS = """
name: catastrophic-matcher
mode: shadow
match:
  matchers:
    - {name: pod, op: "=~", value: "(a+)+$"}
start: page
nodes:
  page:
    actions:
      - page: {team: ml-platform}
"""


async def test_a_nested_quantifier_matcher_runs_in_linear_time_in_the_workflow(
    temporal_server: TemporalDevServer,
) -> None:
    """`(a+)+$` on "aaa...ab" backtracks for ever on a backtracking engine; the workflow sandbox
    reports a deadlock after 2 s. On RE2 the decision is made."""
    result = lint_text(NESTED_QUANTIFIERS, "catastrophic.yaml")
    assert result.problems == [] and result.runbook is not None
    runbook = result.runbook
    value = "a" * 200 + "b"
    ctx = context(now=datetime(2026, 11, 25, 10, tzinfo=UTC)).model_copy(
        update={"labels": {"pod": value, "alertname": "LLMErrorBudgetBurn"}}
    )
    client = await Client.connect(temporal_server.address, data_converter=pydantic_data_converter)
    queue = f"security-regex-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[DecideWorkflow]):
        decision = await client.execute_workflow(
            DecideWorkflow.run,
            args=[[Runbook.model_validate(runbook.model_dump(by_alias=True))], ctx],
            id=f"decide-{uuid.uuid4().hex}",
            task_queue=queue,
            run_timeout=None,
        )
    assert decision.runbook is None  # `(a+)+$` does not match "aaa...ab": decided, not stuck


@pytest.mark.parametrize(
    ("fragment", "reason"),
    [
        ('matchers: [{name: pod, op: "=~", value: "(a)\\\\1"}]', "RE2 syntax"),
        ('matchers: [{name: pod, op: "=~", value: "(?=a)b"}]', "RE2 syntax"),
    ],
    ids=["backreference", "lookahead"],
)
def test_patterns_re2_cannot_run_fail_lint(fragment: str, reason: str) -> None:
    text = NESTED_QUANTIFIERS.replace('matchers:\n    - {name: pod, op: "=~", value: "(a+)+$"}', fragment)
    problems = [str(problem) for problem in lint_text(text, "bad.yaml").problems]
    assert problems and any(reason in problem and problem.startswith("bad.yaml:") for problem in problems), (
        problems
    )


def test_deep_expressions_fail_lint_with_a_clear_error() -> None:
    text = f"""
name: deep
mode: shadow
match: {{alertnames: [X]}}
start: check
nodes:
  check:
    if: "{"(" * 80}true{")" * 80}"
    then: page
    else: page
  page:
    actions:
      - page: {{team: ml-platform}}
"""
    problems = [str(problem) for problem in lint_text(text, "deep.yaml").problems]
    assert any("nested more than 24 levels deep" in problem for problem in problems), problems
    assert all(problem.startswith("deep.yaml:") for problem in problems)


async def test_a_sustained_flood_is_refused_before_the_incidents_history_can_fill(
    secure_stack: SecureStack,
) -> None:
    """Temporal ends a workflow whose history passes 50 MB: past its hourly share of alert payload
    an incident's notifications get a 503 (retried later), never a place in its history."""
    budget = secure_stack.settings.max_alert_bytes_per_incident_per_hour
    accepted = 0
    refused = None
    async with secure_stack.http(SENDER) as http:
        for batch in range(60):
            alerts = [
                {**alert(name=f"Flood{batch}-{i}", service="flood"), "annotations": {"text": "t" * 800}}
                for i in range(900)
            ]
            answer = await http.post("/v1/alerts/alertmanager", json=notification(alerts, group="flood"))
            if answer.status_code == 503:
                refused = answer
                break
            assert answer.status_code == 202, answer.text
            accepted += 1
    assert refused is not None, f"{accepted} notifications of about 0.9 MB each were all signalled"
    assert refused.json()["error"] == "throttled" and "bytes of alerts this hour" in refused.json()["detail"]
    assert refused.headers["retry-after"]
    assert accepted * 256 * 1024 <= budget, "each signal carried at least 256 KiB"
    incident = refused.json()["detail"].split()[1]
    async with secure_stack.http(OPERATOR) as http:
        assert (await http.get(f"/v1/incidents/{incident}")).status_code == 200
    described = await secure_stack.client.get_workflow_handle(incident).describe()
    history_bytes = described.raw_description.workflow_execution_info.history_size_bytes
    assert 0 < history_bytes <= budget + 4 * 1024 * 1024, history_bytes  # Temporal's limit: 50 MB
