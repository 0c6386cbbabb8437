"""The fixed variable tree runbook conditions read, built from a DecisionContext.

Everything here is pure: the clock is `ctx.now`, never the system time.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from incidents.bundle import Change
from incidents.models import DecisionContext
from runbooks.models import FreezeWindow

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_CHANGE_FIELDS = {
    "change_id": "string",
    "probability": "number",
    "kind": "string",
    "service": "string",
    "namespace": "string",
    "minutes_before": "number",
    "author": "string",
}

SCHEMA: dict[str, Any] = {
    "incident": {
        "id": "string",
        "source": "string",
        "service": "string",
        "namespace": "string",
        "severity": "string",
    },
    "alert": {"names": "list", "count": "number"},
    "labels": "map",
    "attribution": {
        "available": "bool",
        "count": "number",
        "top": dict(_CHANGE_FIELDS),
        "runner_up": dict(_CHANGE_FIELDS),
        "margin": "number",
    },
    "changes": {"count": "number", "kinds": "list", "services": "list"},
    "eval": {
        "present": "bool",
        "metric": "string",
        "baseline": "number",
        "candidate": "number",
        "delta": "number",
        "p_value": "number",
        "regression": "bool",
        "manifest": "string",
    },
    "time": {"hour": "number", "minute": "number", "weekday": "string", "minute_of_day": "number"},
    "freeze": {"active": "bool", "name": "string"},
    "rollbacks": {"recent": "number"},
    "evidence": {"complete": "bool", "missing": "list", "series": "number"},
}


def active_freeze(windows: list[FreezeWindow], now: datetime) -> FreezeWindow | None:
    """The first change-freeze window covering `now` (UTC), if any."""
    for window in windows:
        if window.start_at is not None or window.end_at is not None:
            after_start = window.start_at is None or now >= window.start_at
            before_end = window.end_at is None or now < window.end_at
            if after_start and before_end:
                return window
            continue
        if window.days and WEEKDAYS[now.weekday()] not in window.days:
            continue
        current = now.time().replace(tzinfo=None)
        start = window.start or time(0, 0)
        if window.end is None:
            inside = current >= start
        elif start <= window.end:
            inside = start <= current < window.end
        else:  # crosses midnight, e.g. 22:00-06:00
            inside = current >= start or current < window.end
        if inside:
            return window
    return None


def _change_view(ctx: DecisionContext, change_id: str, probability: float) -> dict[str, Any]:
    change: Change | None = next((c for c in ctx.changes if c.id == change_id), None)
    view: dict[str, Any] = {"change_id": change_id, "probability": probability}
    if change is None:
        return {
            **view,
            "kind": None,
            "service": None,
            "namespace": None,
            "minutes_before": None,
            "author": None,
        }
    minutes = (ctx.now - change.started_at).total_seconds() / 60.0
    return {
        **view,
        "kind": change.kind,
        "service": change.service,
        "namespace": change.namespace,
        "minutes_before": round(minutes, 3),
        "author": change.author,
    }


def build_variables(ctx: DecisionContext, freeze_windows: list[FreezeWindow]) -> dict[str, Any]:
    """Plain data matching SCHEMA; missing values are null."""
    ranking = ctx.attribution.ranking if ctx.attribution is not None else []
    top = _change_view(ctx, ranking[0].change_id, ranking[0].probability) if ranking else None
    runner_up = _change_view(ctx, ranking[1].change_id, ranking[1].probability) if len(ranking) > 1 else None
    margin: float | None = None
    if top is not None:
        margin = round(top["probability"] - (runner_up["probability"] if runner_up else 0.0), 6)
    symptom = ctx.eval
    now = ctx.now
    freeze = active_freeze(freeze_windows, now)
    return {
        "incident": {
            "id": ctx.incident_id,
            "source": ctx.source,
            "service": ctx.service,
            "namespace": ctx.namespace,
            "severity": ctx.severity,
        },
        "alert": {"names": list(ctx.alertnames), "count": len(ctx.alertnames)},
        "labels": dict(ctx.labels),
        "attribution": {
            "available": bool(ranking),
            "count": len(ranking),
            "top": top,
            "runner_up": runner_up,
            "margin": margin,
        },
        "changes": {
            "count": len(ctx.changes),
            "kinds": sorted({c.kind for c in ctx.changes}),
            "services": sorted({c.service for c in ctx.changes}),
        },
        "eval": {
            "present": symptom is not None,
            "metric": symptom.metric if symptom else None,
            "baseline": symptom.baseline if symptom else None,
            "candidate": symptom.candidate if symptom else None,
            "delta": symptom.delta if symptom else None,
            "p_value": symptom.p_value if symptom else None,
            "regression": symptom.regression if symptom else False,
            "manifest": symptom.manifest if symptom else None,
        },
        "time": {
            "hour": now.hour,
            "minute": now.minute,
            "weekday": WEEKDAYS[now.weekday()],
            "minute_of_day": now.hour * 60 + now.minute,
        },
        "freeze": {"active": freeze is not None, "name": freeze.name if freeze else None},
        "rollbacks": {"recent": ctx.recent_rollbacks},
        "evidence": {
            "complete": not ctx.missing_evidence,
            "missing": sorted(ctx.missing_evidence),
            "series": ctx.evidence_series,
        },
    }
