"""decide(): matching, tree walk, modes, determinism."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from incidents.actions import RecordAction, RollbackAction
from incidents.bundle import AttributionOutput, Change, ModelInfo, RankedChange
from incidents.models import DecisionContext, EvalSymptom
from runbooks.engine import NO_RUNBOOK_NOTE, decide, match_failures, run_runbook
from runbooks.lint import lint_text
from runbooks.loader import load_runbooks
from runbooks.models import Runbook

WEDNESDAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def context(
    alertname: str = "LLMErrorBudgetBurn",
    kind: str = "prompt",
    probability: float = 0.85,
    namespace: str = "prod",
    now: datetime = WEDNESDAY,
    **extra: object,
) -> DecisionContext:
    changes = [
        Change(
            id="chg-1", service="chat-api", kind=kind, started_at=datetime(2026, 11, 25, 9, 40, tzinfo=UTC)
        ),
        Change(
            id="chg-2", service="chat-api", kind="image", started_at=datetime(2026, 11, 25, 8, tzinfo=UTC)
        ),
    ]
    attribution = AttributionOutput(
        incident_id="inc-1",
        ranking=[
            RankedChange(change_id="chg-1", probability=probability),
            RankedChange(change_id="chg-2", probability=round(1 - probability, 3) / 4),
        ],
        model=ModelInfo(name="test", version="1"),
    )
    values: dict[str, object] = {
        "incident_id": "inc-1",
        "service": "chat-api",
        "namespace": namespace,
        "source": "alertmanager",
        "severity": "critical",
        "alertnames": [alertname],
        "labels": {"alertname": alertname, "severity": "critical"},
        "attribution": attribution,
        "changes": changes,
        "now": now,
    }
    values.update(extra)
    return DecisionContext.model_validate(values)


@pytest.fixture(scope="module")
def library() -> list[Runbook]:
    return load_runbooks()


def test_confident_prompt_culprit_is_rolled_back_automatically(library: list[Runbook]) -> None:
    decision = decide(library, context())
    assert decision.runbook == "llm-quality-rollback"
    assert [a.type for a in decision.actions] == ["rollback", "wait_verify", "notify"]
    rollback = decision.actions[0]
    assert isinstance(rollback, RollbackAction)
    assert (rollback.change_id, rollback.mode) == ("chg-1", "auto")


def test_decide_is_deterministic_and_order_independent(library: list[Runbook]) -> None:
    ctx = context(namespace="staging", alertname="RagRetrievalPrecisionBudgetBurn", kind="corpus")
    first = decide(library, ctx).model_dump(mode="json")
    again = [decide(library, ctx).model_dump(mode="json") for _ in range(5)]
    reversed_order = decide(list(reversed(library)), ctx).model_dump(mode="json")
    assert all(item == first for item in again)
    assert reversed_order == first
    assert first["runbook"] == "rag-shadow-trial"  # priority 30 beats llm-quality-rollback's 10


def test_shadow_runbook_only_produces_shadow_actions(library: list[Runbook]) -> None:
    ctx = context(namespace="staging", alertname="RagRetrievalPrecisionBudgetBurn", kind="corpus")
    decision = decide(library, ctx)
    assert decision.mode == "shadow"
    assert [(a.type, a.mode) for a in decision.actions] == [("rollback", "shadow"), ("wait_verify", "shadow")]


def test_no_match_records_and_leaves_it_to_a_human(library: list[Runbook]) -> None:
    decision = decide(library, context(alertname="DiskAlmostFull"))
    assert decision.runbook is None
    assert decision.actions == [RecordAction(mode="auto", note=NO_RUNBOOK_NOTE)]


def test_year_end_freeze_and_rollback_budget(library: list[Runbook]) -> None:
    frozen = decide(library, context(now=datetime(2026, 12, 28, 10, tzinfo=UTC)))
    assert [step.node for step in frozen.path] == ["in_freeze", "page_during_freeze"]
    assert [a.type for a in frozen.actions] == ["page", "record"]
    saturday = decide(library, context(now=datetime(2026, 11, 28, 10, tzinfo=UTC)))
    assert saturday.actions[0].type == "rollback", "weekends are not frozen"
    busy = decide(library, context(recent_rollbacks=3))
    assert [a.type for a in busy.actions] == ["escalate"]


def test_image_rollback_waits_for_approval(library: list[Runbook]) -> None:
    decision = decide(library, context(kind="image", probability=0.9))
    assert [(a.type, a.mode) for a in decision.actions] == [
        ("request_approval", "auto"),
        ("rollback", "approve"),
        ("wait_verify", "auto"),
    ]


def test_missing_attribution_takes_the_safe_branch(library: list[Runbook]) -> None:
    decision = decide(library, context(attribution=None))
    assert [step.node for step in decision.path][-1] == "page_uncertain"
    assert decision.path[2].value is False


def test_eval_regression_uses_eval_delta(library: list[Runbook]) -> None:
    symptom = EvalSymptom(
        manifest="golden",
        service="chat-api",
        run_id="r1",
        baseline=0.9,
        candidate=0.75,
        delta=-0.15,
        p_value=0.01,
        observed_at=WEDNESDAY,
    )
    decision = decide(
        library, context(kind="model", probability=0.7, source="eval", alertnames=[], eval=symptom)
    )
    assert decision.runbook == "eval-regression"
    assert [a.type for a in decision.actions] == ["rollback", "wait_verify", "notify"]


TREE = """\
name: t
mode: auto
match:
  alertnames: [A]
  matchers:
    - {name: team, op: "=~", value: "ml|search"}
freeze_windows:
  - {name: night, start: "22:00", end: "06:00"}
  - {name: launch, from: "2026-12-01T00:00:00Z", until: "2026-12-02T00:00:00Z"}
start: a
nodes:
  a:
    if: freeze.active
    then: frozen
    else: b
  b:
    if: eval.delta < -0.1
    then: frozen
    else: act
  act:
    actions:
      - rollback: {kinds: [model]}
      - scale: {replicas: 3, mode: shadow}
      - pause_rollout:
  frozen:
    actions:
      - record: "frozen"
"""


@pytest.fixture(scope="module")
def tree() -> Runbook:
    result = lint_text(TREE, "tree.yaml")
    assert result.problems == [] and result.runbook is not None
    return result.runbook


def test_label_matchers(tree: Runbook) -> None:
    ctx = context(alertname="A", labels={"team": "ml"})
    assert match_failures(tree, ctx) == []
    assert match_failures(tree, context(alertname="A", labels={"team": "web"})) == [
        "label matcher team=~'ml|search' does not hold"
    ]


@pytest.mark.parametrize(
    ("now", "frozen"),
    [
        (datetime(2026, 11, 25, 23, 30, tzinfo=UTC), True),
        (datetime(2026, 11, 25, 5, 59, tzinfo=UTC), True),
        (datetime(2026, 11, 25, 6, 0, tzinfo=UTC), False),
        (datetime(2026, 12, 1, 12, 0, tzinfo=UTC), True),
    ],
)
def test_freeze_windows(tree: Runbook, now: datetime, frozen: bool) -> None:
    decision = run_runbook(tree, context(alertname="A", now=now))
    assert decision.path[0].value is frozen


def test_evaluation_error_takes_else_and_says_why(tree: Runbook) -> None:
    decision = run_runbook(tree, context(alertname="A"))
    step = decision.path[1]
    assert step.value is False
    assert step.note is not None and "cannot compare null < number" in step.note


def test_action_kinds_and_mode_overrides(tree: Runbook) -> None:
    decision = run_runbook(tree, context(alertname="A", kind="prompt"))
    assert [a.model_dump(exclude_none=True) for a in decision.actions] == [
        {
            "type": "record",
            "mode": "auto",
            "note": "rollback skipped: top change chg-1 is of kind prompt, runbook allows ['model']",
        },
        {"type": "scale", "mode": "shadow", "deployment": "chat-api", "replicas": 3},
        {"type": "pause_rollout", "mode": "auto", "deployment": "chat-api"},
    ]
