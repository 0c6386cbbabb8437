"""Dry runs: build a DecisionContext from a recorded bundle and walk a runbook, acting on nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from incidents.actions import PlannedAction
from incidents.bundle import AttributionOutput, IncidentBundle, describe_validation_error
from incidents.models import DecisionContext, DecisionStep
from runbooks import expr, expr_check, expr_eval
from runbooks.engine import compile_condition, match_failures, run_runbook
from runbooks.models import Runbook
from runbooks.variables import build_variables


class SimulationError(ValueError):
    """Bad simulation input; the message names the file and field."""


class SimulatedStep(DecisionStep):
    """A step of the path plus the values of the variables its condition read."""

    inputs: dict[str, Any] = Field(default_factory=dict)


class Simulation(BaseModel):
    runbook: str
    matches: bool
    match_failures: list[str] = Field(default_factory=list)
    mode: str
    attribution_source: str
    path: list[SimulatedStep] = Field(default_factory=list)
    actions: list[PlannedAction] = Field(default_factory=list)


def context_from_bundle(
    bundle: IncidentBundle,
    attribution: AttributionOutput | None,
    overrides: dict[str, Any] | None = None,
) -> DecisionContext:
    """The context the workflow would build for this bundle; `overrides` replace fields."""
    incident = bundle.incident
    labels = dict(incident.labels)
    base: dict[str, Any] = {
        "incident_id": incident.id,
        "service": incident.service,
        "namespace": incident.namespace,
        "source": incident.source,
        "severity": labels.get("severity"),
        "alertnames": [labels["alertname"]] if "alertname" in labels else [],
        "labels": labels,
        "attribution": attribution,
        "changes": bundle.changes,
        "now": incident.detected_at,
        "recent_rollbacks": 0,
    }
    merged = {**base, **(overrides or {})}
    try:
        return DecisionContext.model_validate(merged)
    except ValidationError as exc:
        raise SimulationError(f"context: {describe_validation_error(exc)}") from None


def load_attribution_file(path: Path) -> AttributionOutput:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SimulationError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise SimulationError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    try:
        return AttributionOutput.model_validate(data)
    except ValidationError as exc:
        raise SimulationError(f"{path}: {describe_validation_error(exc)}") from None


def attribute_with_available_model(
    bundle: IncidentBundle, model_path: Path | None = None
) -> tuple[AttributionOutput | None, str]:
    """Rank the bundle with the attribution model (`model_path`, else the packaged one); else (None, why not)."""
    try:
        from attribution.model import load_model
    except ImportError as exc:
        return None, f"none (attribution code not available: {exc})"
    try:
        return load_model(model_path).attribute(bundle), "attribution model"
    except Exception as exc:  # any failure of optional code degrades to "no attribution"
        return None, f"none (attribution failed: {type(exc).__name__}: {exc})"


def simulate(
    runbook: Runbook,
    bundle: IncidentBundle,
    attribution: AttributionOutput | None,
    attribution_source: str,
    overrides: dict[str, Any] | None = None,
) -> Simulation:
    ctx = context_from_bundle(bundle, attribution, overrides)
    decision = run_runbook(runbook, ctx)
    variables = build_variables(ctx, runbook.freeze_windows)
    path = [SimulatedStep(**step.model_dump(), inputs=_inputs(step, variables)) for step in decision.path]
    return Simulation(
        runbook=runbook.name,
        matches=not match_failures(runbook, ctx),
        match_failures=match_failures(runbook, ctx),
        mode=runbook.mode,
        attribution_source=attribution_source,
        path=path,
        actions=decision.actions,
    )


def _inputs(step: DecisionStep, variables: dict[str, Any]) -> dict[str, Any]:
    if step.condition is None:
        return {}
    values: dict[str, Any] = {}
    for var in expr_check.variables_used(compile_condition(step.condition)):
        try:
            values[expr_check.describe_var(var)] = expr_eval.evaluate(var, variables)
        except expr.ExprError as exc:
            values[expr_check.describe_var(var)] = f"<error: {exc.message}>"
    return values


def describe_action(action: PlannedAction) -> str:
    fields = action.model_dump(exclude={"type", "mode"}, exclude_none=True)
    detail = ", ".join(f"{key}={value}" for key, value in fields.items() if value not in ([], ""))
    return f"{action.type} [{action.mode}]" + (f" {detail}" if detail else "")


def render_text(result: Simulation) -> str:
    lines = [f"runbook {result.runbook} (mode {result.mode})"]
    if result.matches:
        lines.append("match: yes")
    else:
        lines.append("match: NO (decide() would not pick this runbook): " + "; ".join(result.match_failures))
    lines.append(f"attribution: {result.attribution_source}")
    lines.append("path:")
    for step in result.path:
        if step.condition is not None:
            value = "true" if step.value is True else "false"
            lines.append(f"  {step.node}: {step.condition} -> {value}")
            if step.inputs:
                shown = ", ".join(
                    f"{name}={json.dumps(item, default=str)}" for name, item in step.inputs.items()
                )
                lines.append(f"    where {shown}")
            if step.note:
                lines.append(f"    ({step.note})")
        else:
            lines.append(f"  {step.node}: {step.note or ''}")
    lines.append("actions (not executed):")
    for action in result.actions:
        lines.append(f"  - {describe_action(action)}")
    if not result.actions:
        lines.append("  (none)")
    return "\n".join(lines)
