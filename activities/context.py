"""collect_context: assemble the incident bundle (spec v1) from every change source and the evidence."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from temporalio import activity

from activities.prometheus import PrometheusError, query_range
from incidents.bundle import BundleIncident, Change, IncidentBundle, MetricSeries, Symptom, Topology
from incidents.changes_store import ChangeStore
from incidents.models import ContextRequest, ContextResult
from worker.settings import Settings, current_settings

# Alert annotations that point backout at evidence series in Prometheus.
EVIDENCE_QUERY_ANNOTATION = "backout.dev/evidence-query"
EVIDENCE_METRIC_ANNOTATION = "backout.dev/evidence-metric"
EVIDENCE_DIRECTION_ANNOTATION = "backout.dev/evidence-bad-direction"

ChangeSource = Callable[[Settings, str | None, datetime, datetime], list[Change]]


def reported_changes(
    settings: Settings, namespace: str | None, since: datetime, until: datetime
) -> list[Change]:
    """Changes posted to POST /v1/changes."""
    store = ChangeStore(settings.change_store_file)
    try:
        return store.list(since=since, until=until, namespace=namespace)
    finally:
        store.close()


CHANGE_SOURCES: list[tuple[str, ChangeSource]] = [("change API", reported_changes)]


def register_change_source(name: str, source: ChangeSource) -> None:
    if all(existing != name for existing, _ in CHANGE_SOURCES):
        CHANGE_SOURCES.append((name, source))


def _evidence(
    settings: Settings, request: ContextRequest, start: datetime, end: datetime
) -> tuple[list[MetricSeries], list[str]]:
    series: list[MetricSeries] = []
    notes: list[str] = []
    if request.eval is not None and request.eval.series and request.service:
        series.append(
            MetricSeries(
                name="eval_score",
                service=request.service,
                bad_direction="down",
                points=[[when.isoformat(), value] for when, value in request.eval.series],  # type: ignore[misc]
            )
        )
    if not settings.prometheus_url:
        return series, notes
    seen: set[str] = set()
    for alert in request.alerts:
        query = alert.annotations.get(EVIDENCE_QUERY_ANNOTATION)
        if not query or query in seen:
            continue
        seen.add(query)
        name = alert.annotations.get(EVIDENCE_METRIC_ANNOTATION, "error_rate")
        direction = alert.annotations.get(EVIDENCE_DIRECTION_ANNOTATION)
        try:
            results = query_range(settings.prometheus_url, query, start, end)
        except PrometheusError as exc:
            notes.append(f"evidence query skipped: {exc}")
            continue
        for result in results:
            service = result.labels.get("service") or request.service
            if not service or not result.points:
                continue
            series.append(
                MetricSeries(
                    name=name,
                    service=service,
                    version=result.labels.get("version"),
                    pod=result.labels.get("pod"),
                    bad_direction=direction or None,  # type: ignore[arg-type]
                    points=[[when.isoformat(), value] for when, value in result.points],  # type: ignore[misc]
                )
            )
    return series, notes


def build_bundle(settings: Settings, request: ContextRequest, now: datetime) -> ContextResult:
    since = request.detected_at - timedelta(seconds=request.lookback_s)
    notes: list[str] = []
    changes: dict[str, Change] = {}
    for name, source in CHANGE_SOURCES:
        try:
            found = source(settings, request.namespace, since, now)
        except Exception as exc:  # one broken source must not hide the others
            notes.append(f"change source {name} failed: {exc}")
            continue
        for change in found:
            changes.setdefault(change.id, change)
    metrics, evidence_notes = _evidence(settings, request, since, now)
    notes.extend(evidence_notes)
    topology_edges = _topology_edges(settings, request.namespace)
    metric_name = request.labels.get("backout_metric") or ("eval_score" if request.eval else None)
    bundle = IncidentBundle(
        version=1,
        incident=BundleIncident(
            id=request.incident_id,
            detected_at=request.detected_at,
            service=request.service,
            namespace=request.namespace,
            source=request.source,
            labels=request.labels,
            symptom=Symptom(metric=metric_name) if metric_name else None,
        ),
        topology=Topology(edges=topology_edges),
        changes=sorted(changes.values(), key=lambda c: c.started_at),
        metrics=metrics,
    )
    return ContextResult(
        bundle=bundle, notes=notes, recent_rollbacks=_recent_rollbacks(settings, request.namespace)
    )


TOPOLOGY_SOURCES: list[Callable[[Settings, str | None], list[tuple[str, str]]]] = []
ROLLBACK_COUNTERS: list[Callable[[Settings, str | None], int]] = []


def _topology_edges(settings: Settings, namespace: str | None) -> list[tuple[str, str]]:
    edges: set[tuple[str, str]] = set()
    for source in TOPOLOGY_SOURCES:
        try:
            edges.update(source(settings, namespace))
        except Exception:  # topology is optional evidence
            continue
    return sorted(edges)


def _recent_rollbacks(settings: Settings, namespace: str | None) -> int:
    total = 0
    for counter in ROLLBACK_COUNTERS:
        try:
            total += counter(settings, namespace)
        except Exception:
            continue
    return total


@activity.defn(name="collect_context")
def collect_context(request: ContextRequest) -> ContextResult:
    return build_bundle(current_settings(), request, datetime.now(UTC))


ACTIVITIES = [collect_context]
