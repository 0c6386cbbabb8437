"""The pure evaluator: match runbooks to an incident and walk the decision tree.

Runs inside the Temporal workflow: no I/O, no clock (ctx.now), no randomness; imports
only the standard library, pydantic and backout's own models.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from functools import lru_cache
from typing import Any

from incidents.actions import Action, Mode, PlannedAction, RecordAction, effective_mode
from incidents.models import Decision, DecisionContext, DecisionStep
from runbooks import expr, expr_eval
from runbooks.models import LabelMatcher, Runbook
from runbooks.regex import full_match
from runbooks.variables import build_variables

NO_RUNBOOK_NOTE = "no runbook matched this incident; a human decides"


@lru_cache(maxsize=1024)
def compile_condition(source: str) -> expr.Node:
    return expr.parse(source)


def _matcher_holds(matcher: LabelMatcher, labels: dict[str, str]) -> bool:
    value = labels.get(matcher.name, "")
    if matcher.op == "=":
        return value == matcher.value
    if matcher.op == "!=":
        return value != matcher.value
    found = full_match(matcher.value, value)
    return found if matcher.op == "=~" else not found


def match_failures(runbook: Runbook, ctx: DecisionContext) -> list[str]:
    """Why a runbook does not match (empty list = it matches)."""
    match = runbook.match
    failures: list[str] = []
    if match.alertnames and not set(match.alertnames) & set(ctx.alertnames):
        failures.append(f"alertname {sorted(ctx.alertnames)} not in {match.alertnames}")
    for name, wanted in sorted(match.labels.items()):
        if ctx.labels.get(name) != wanted:
            failures.append(f"label {name}={ctx.labels.get(name)!r}, wanted {wanted!r}")
    for matcher in match.matchers:
        if not _matcher_holds(matcher, ctx.labels):
            failures.append(f"label matcher {matcher.name}{matcher.op}{matcher.value!r} does not hold")
    if match.services and ctx.service not in match.services:
        failures.append(f"service {ctx.service!r} not in {match.services}")
    if match.namespaces and ctx.namespace not in match.namespaces:
        failures.append(f"namespace {ctx.namespace!r} not in {match.namespaces}")
    if match.severities and ctx.severity not in match.severities:
        failures.append(f"severity {ctx.severity!r} not in {match.severities}")
    if match.sources and ctx.source not in match.sources:
        failures.append(f"source {ctx.source!r} not in {match.sources}")
    is_regression = ctx.eval is not None and ctx.eval.regression
    if match.eval_regression is not None and match.eval_regression != is_regression:
        failures.append("not an eval regression" if match.eval_regression else "is an eval regression")
    return failures


def matching_runbooks(runbooks: Sequence[Runbook], ctx: DecisionContext) -> list[Runbook]:
    """Runbooks that match, best first: higher priority, then name."""
    found = [runbook for runbook in runbooks if not match_failures(runbook, ctx)]
    return sorted(found, key=lambda runbook: (-runbook.priority, runbook.name))


def plan_action(action: Action, runbook_mode: Mode, ctx: DecisionContext) -> tuple[PlannedAction, str | None]:
    """The planned action for one step, and a note when it had to be replaced by a record."""
    planned, note = action.plan(effective_mode(runbook_mode, action.mode_override()), ctx)
    return planned, note


def evaluate_condition(source: str, variables: dict[str, Any]) -> tuple[bool, str | None]:
    """The branch to take and, on an evaluation error, why the `else` branch was taken."""
    try:
        value = expr_eval.evaluate(compile_condition(source), variables)
    except expr.ExprError as exc:
        return False, f"error at column {exc.offset + 1}: {exc.message}; took 'else'"
    if not isinstance(value, bool):
        return False, f"condition gave {expr.type_name(value)}, not a boolean; took 'else'"
    return value, None


def run_runbook(runbook: Runbook, ctx: DecisionContext) -> Decision:
    """Walk one runbook's tree for this incident (whether or not it matches)."""
    if ctx.now.tzinfo is None:
        ctx = ctx.model_copy(update={"now": ctx.now.replace(tzinfo=UTC)})
    variables = build_variables(ctx, runbook.freeze_windows)
    path: list[DecisionStep] = []
    actions: list[PlannedAction] = []
    current: str | None = runbook.start
    visited: set[str] = set()
    while current is not None:
        node = runbook.nodes.get(current)
        if node is None or current in visited:
            problem = "unknown node" if node is None else "cycle"
            path.append(DecisionStep(node=current, note=f"stopped: {problem} (runbook failed lint)"))
            actions.append(RecordAction(mode=runbook.mode, note=f"runbook {runbook.name} stopped: {problem}"))
            break
        visited.add(current)
        if node.condition is not None:
            taken, note = evaluate_condition(node.condition, variables)
            path.append(DecisionStep(node=current, condition=node.condition, value=taken, note=note))
            current = node.then if taken else node.otherwise
            continue
        names: list[str] = []
        for step in node.actions or []:
            planned, note = plan_action(step.action, runbook.mode, ctx)
            actions.append(planned)
            names.append(step.name if note is None else f"{step.name} ({note})")
        path.append(DecisionStep(node=current, note="actions: " + ", ".join(names)))
        current = node.next
    return Decision(runbook=runbook.name, mode=runbook.mode, path=path, actions=actions)


def decide(runbooks: Sequence[Runbook], ctx: DecisionContext) -> Decision:
    """Pick the best matching runbook and walk its tree; a record-only decision if none matches."""
    candidates = matching_runbooks(runbooks, ctx)
    if not candidates:
        return Decision(
            runbook=None,
            mode="shadow",
            path=[DecisionStep(node="match", note=NO_RUNBOOK_NOTE)],
            actions=[RecordAction(mode="auto", note=NO_RUNBOOK_NOTE)],
        )
    return run_runbook(candidates[0], ctx)
