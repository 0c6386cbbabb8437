"""`backout runbook test`: replay recorded incidents through every matching runbook.

Each scenario folder holds `bundle.json` and, beside it, `decision.json`:

    {
      "context": {...},            optional DecisionContext overrides (eval, recent_rollbacks, now...)
      "attribution": {...} | null, the attribution the decisions were made with (recorded, so a
                                   retrained model does not silently change runbook expectations)
      "selected": "name" | null,   the runbook decide() picks
      "decisions": {"name": {"path": ["node", ...], "actions": [PlannedAction, ...]}}
    }
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter

from incidents.actions import PlannedAction
from incidents.bundle import AttributionOutput
from incidents.models import Decision
from incidents.scenarios import ScenarioError, case_folders, load_case
from runbooks.engine import decide, matching_runbooks, run_runbook
from runbooks.models import Runbook
from runbooks.simulate import attribute_with_available_model, context_from_bundle

_ACTIONS = TypeAdapter(list[PlannedAction])
EXPECTATION_FILE = "decision.json"


class ExpectedDecision(BaseModel):
    path: list[str]
    actions: list[PlannedAction] = Field(default_factory=list)


class ScenarioExpectation(BaseModel):
    context: dict[str, Any] = Field(default_factory=dict)
    attribution: AttributionOutput | None = None
    selected: str | None = None
    decisions: dict[str, ExpectedDecision] = Field(default_factory=dict)


class ScenarioOutcome(BaseModel):
    scenario: str
    ok: bool
    skipped: bool = False
    problems: list[str] = Field(default_factory=list)
    matched: list[str] = Field(default_factory=list)
    selected: str | None = None


class Coverage(BaseModel):
    runbook: str
    covered: int
    total: int
    missing: list[str] = Field(default_factory=list)

    @property
    def percent(self) -> float:
        return 100.0 * self.covered / self.total if self.total else 100.0


class ScenarioReport(BaseModel):
    scenarios: list[ScenarioOutcome]
    coverage: list[Coverage]

    @property
    def ok(self) -> bool:
        return all(outcome.ok for outcome in self.scenarios)


def branches(runbook: Runbook) -> list[str]:
    """Every branch of the tree: `node:then` / `node:else` for conditions, `node` for actions."""
    found: list[str] = []
    for name, node in runbook.nodes.items():
        found.extend([f"{name}:then", f"{name}:else"] if node.condition is not None else [name])
    return found


def taken_branches(decision: Decision) -> set[str]:
    taken: set[str] = set()
    for step in decision.path:
        if step.condition is not None:
            taken.add(f"{step.node}:{'then' if step.value is True else 'else'}")
        else:
            taken.add(step.node)
    return taken


def load_expectation(folder: Path) -> ScenarioExpectation | None:
    return load_case(folder, ScenarioExpectation, EXPECTATION_FILE).expected


def scenario_folders(root: Path) -> list[Path]:
    return case_folders(root)


def run_scenario(folder: Path, runbooks: list[Runbook], covered: dict[str, set[str]]) -> ScenarioOutcome:
    name = folder.name
    try:
        case = load_case(folder, ScenarioExpectation, EXPECTATION_FILE)
    except ScenarioError as exc:
        return ScenarioOutcome(scenario=name, ok=False, problems=[str(exc)])
    bundle, expected = case.bundle, case.expected
    if expected is None:
        note = "no decision.json beside the bundle: not checked (record one with --record)"
        return ScenarioOutcome(scenario=name, ok=True, skipped=True, problems=[note])
    attribution = expected.attribution
    ctx = context_from_bundle(bundle, attribution, expected.context)
    matched = matching_runbooks(runbooks, ctx)
    problems: list[str] = []
    for runbook in matched:
        decision = run_runbook(runbook, ctx)
        covered.setdefault(runbook.name, set()).update(taken_branches(decision))
        want = expected.decisions.get(runbook.name)
        if want is None:
            problems.append(f"runbook {runbook.name} matches but decision.json has no expectation for it")
            continue
        got_path = [step.node for step in decision.path]
        if got_path != want.path:
            problems.append(f"{runbook.name}: path {got_path} != expected {want.path}")
        got_actions = _ACTIONS.dump_python(decision.actions, mode="json")
        want_actions = _ACTIONS.dump_python(want.actions, mode="json")
        if got_actions != want_actions:
            problems.append(f"{runbook.name}: actions {got_actions} != expected {want_actions}")
    for missing in sorted(set(expected.decisions) - {runbook.name for runbook in matched}):
        problems.append(f"expected runbook {missing} to match, it did not")
    selected = decide(runbooks, ctx).runbook
    if selected != expected.selected:
        problems.append(f"decide() picked {selected!r}, expected {expected.selected!r}")
    return ScenarioOutcome(
        scenario=name,
        ok=not problems,
        problems=problems,
        matched=[runbook.name for runbook in matched],
        selected=selected,
    )


def record_scenario(folder: Path, runbooks: list[Runbook]) -> ScenarioExpectation:
    """Write decision.json from what the runbooks decide now (review the diff before committing)."""
    case = load_case(folder, ScenarioExpectation, EXPECTATION_FILE)
    bundle, previous = case.bundle, case.expected
    if previous is not None:
        context, attribution = previous.context, previous.attribution
    else:
        context, attribution = {}, attribute_with_available_model(bundle)[0]
    ctx = context_from_bundle(bundle, attribution, context)
    decisions: dict[str, ExpectedDecision] = {}
    for runbook in matching_runbooks(runbooks, ctx):
        decision = run_runbook(runbook, ctx)
        decisions[runbook.name] = ExpectedDecision(
            path=[step.node for step in decision.path], actions=decision.actions
        )
    expectation = ScenarioExpectation(
        context=context, attribution=attribution, selected=decide(runbooks, ctx).runbook, decisions=decisions
    )
    text = json.dumps(expectation.model_dump(mode="json", exclude_none=False), indent=2) + "\n"
    (folder / EXPECTATION_FILE).write_text(text, encoding="utf-8")
    return expectation


def run_all(root: Path, runbooks: list[Runbook]) -> ScenarioReport:
    covered: dict[str, set[str]] = {}
    outcomes = [run_scenario(folder, runbooks, covered) for folder in scenario_folders(root)]
    coverage = []
    for runbook in runbooks:
        every = branches(runbook)
        hit = covered.get(runbook.name, set())
        coverage.append(
            Coverage(
                runbook=runbook.name,
                covered=sum(1 for branch in every if branch in hit),
                total=len(every),
                missing=[branch for branch in every if branch not in hit],
            )
        )
    return ScenarioReport(scenarios=outcomes, coverage=coverage)
