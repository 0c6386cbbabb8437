"""Metric evidence from Prometheus, with evidence queries as data and never as code.

- A query is one of the settings' named `evidence_queries`; an alert may only name one (its
  `backout.dev/evidence-query` annotation, comma-separated names) to have a `run: when_named`
  query run for its incident. PromQL written in an alert is never sent.
- `{namespace}` and `{service}` are filled in as escaped PromQL string content (the settings
  refuse a placeholder outside a double-quoted string), so a label value stays a value.
- At most `max_evidence_queries` range queries per incident, deduplicated.
- The range is clamped: it never starts before `lookback` ago nor ends after now, whatever times
  an alert claims; its step keeps about EVIDENCE_POINTS points.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ValidationError

from activities.prometheus import QueryBudget
from config import EvidenceQuery, Settings
from incidents.bundle import MetricSeries, describe_validation_error
from incidents.models import ContextRequest

EVIDENCE_QUERY_ANNOTATION = "backout.dev/evidence-query"
EVIDENCE_POINTS = 300
# Series kept per query and per incident: the bundle crosses Temporal (2 MB per payload).
MAX_SERIES_PER_QUERY = 20
MAX_SERIES = 60
_PROMQL_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def promql_string_content(value: str) -> str:
    """`value` as the inside of a double-quoted PromQL string: it can never end the string."""
    return "".join(_PROMQL_ESCAPES.get(char, char) for char in value)


def fill(query: EvidenceQuery, namespace: str | None, service: str | None) -> EvidenceQuery:
    text = query.query.replace("{namespace}", promql_string_content(namespace or "")).replace(
        "{service}", promql_string_content(service or "")
    )
    return query.model_copy(update={"query": text})


class QueryPlan(BaseModel):
    """The queries one incident sends, and what was left out and why."""

    queries: list[EvidenceQuery]
    notes: list[str]


def plan_queries(settings: Settings, request: ContextRequest) -> QueryPlan:
    """`run: always` queries, then the `when_named` ones the alerts name; capped and deduplicated."""
    notes: list[str] = []
    chosen = [query for query in settings.evidence_queries if query.run == "always"]
    by_name = {query.name: query for query in settings.evidence_queries if query.run == "when_named"}
    named: list[str] = []
    unknown: set[str] = set()
    for alert in request.alerts:
        for name in (
            part.strip() for part in alert.annotations.get(EVIDENCE_QUERY_ANNOTATION, "").split(",")
        ):
            if not name:
                continue
            if name in by_name:
                if name not in named:
                    named.append(name)
            else:
                unknown.add(name)
    chosen.extend(by_name[name] for name in named)
    if unknown:
        shown = ", ".join(sorted(repr(name[:60]) for name in unknown)[:5])
        notes.append(
            f"alerts name {len(unknown)} evidence quer{'y' if len(unknown) == 1 else 'ies'} that the "
            f"settings do not define ({shown}); alerts name queries, PromQL in an alert is never run"
        )
    unique: dict[str, EvidenceQuery] = {}
    for query in chosen:
        filled = fill(query, request.namespace, request.service)
        unique.setdefault(filled.query, filled)
    planned = list(unique.values())
    if len(planned) > settings.max_evidence_queries:
        notes.append(
            f"{len(planned) - settings.max_evidence_queries} evidence queries over the cap of "
            f"{settings.max_evidence_queries} per incident were not sent"
        )
        planned = planned[: settings.max_evidence_queries]
    return QueryPlan(queries=planned, notes=notes)


def clamp_window(start: datetime, end: datetime, now: datetime, lookback_s: int) -> tuple[datetime, datetime]:
    """The evidence range inside [now - lookback - EVIDENCE_LEAD, now], start before end."""
    earliest = now - timedelta(seconds=lookback_s) - EVIDENCE_LEAD
    end = min(max(end, earliest), now)
    start = min(max(start, earliest), end - timedelta(seconds=1))
    return start, end


# Evidence series start this long before the earliest change.
EVIDENCE_LEAD = timedelta(minutes=10)


def step_for(start: datetime, end: datetime) -> float:
    """About EVIDENCE_POINTS points per series, never finer than a second."""
    return max(1.0, (end - start).total_seconds() / EVIDENCE_POINTS)


def collect_evidence(
    settings: Settings,
    request: ContextRequest,
    start: datetime,
    end: datetime,
    now: datetime,
    budget: QueryBudget,
) -> tuple[list[MetricSeries], list[str]]:
    """The eval's own series and the planned queries' results, with notes on what was skipped.
    `budget` bounds the wait on Prometheus and keeps what is missing (ContextResult.missing_evidence,
    the runbook's evidence.missing): issue 13, activities/prometheus.py."""
    series: list[MetricSeries] = []
    notes: list[str] = []
    if request.eval is not None and request.eval.series and request.service:
        series.append(
            MetricSeries(
                name="eval_score", service=request.service, bad_direction="down", points=request.eval.series
            )
        )
    if not settings.prometheus_url:
        return series, notes
    plan = plan_queries(settings, request)
    notes.extend(plan.notes)
    start, end = clamp_window(start, end, now, request.lookback_s)
    for query in plan.queries:
        results = budget.range(
            settings.prometheus_url, query.name, query.query, start, end, step_s=step_for(start, end)
        )
        if results is None:
            continue
        if len(results) > MAX_SERIES_PER_QUERY:
            notes.append(
                f"evidence query {query.name} returned {len(results)} series; kept {MAX_SERIES_PER_QUERY}"
            )
            results = results[:MAX_SERIES_PER_QUERY]
        for result in results:
            if len(series) >= MAX_SERIES:
                notes.append(f"evidence capped at {MAX_SERIES} series per incident")
                return series, notes
            service = result.labels.get("service") or request.service
            if not service or not result.points:
                continue
            try:
                series.append(
                    MetricSeries(
                        name=query.name,
                        service=service,
                        version=result.labels.get(query.version_label) if query.version_label else None,
                        pod=result.labels.get("pod"),
                        bad_direction=query.bad_direction,
                        points=result.points,
                    )
                )
            except ValidationError as exc:
                notes.append(f"evidence query {query.name}: {describe_validation_error(exc)}")
    return series, notes
