"""collect_context: assemble the incident bundle (spec v1) from every change source and the evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ValidationError
from temporalio import activity

from activities.changes_store import ChangeStore
from activities.kube import guards, ledger
from activities.kube.client import KubeApis, kube_configured, shared_apis
from activities.kube.dry_run import DryRun
from activities.prometheus import QueryBudget
from config import EvidenceQuery, Settings
from incidents.bundle import (
    BundleIncident,
    Change,
    IncidentBundle,
    MetricSeries,
    Symptom,
    Topology,
    describe_validation_error,
)
from incidents.models import ContextRequest, ContextResult

# Alert annotations that point backout at evidence series in Prometheus.
EVIDENCE_QUERY_ANNOTATION = "backout.dev/evidence-query"
EVIDENCE_METRIC_ANNOTATION = "backout.dev/evidence-metric"
EVIDENCE_DIRECTION_ANNOTATION = "backout.dev/evidence-bad-direction"

# Evidence series start this long before the earliest change and carry about this many points.
EVIDENCE_LEAD = timedelta(minutes=10)
EVIDENCE_POINTS = 300
# Author the ledger gives to changes backout itself made (rollbacks, restores).
BACKOUT_AUTHOR = "backout"
# Deployment annotation naming the services a workload calls: the topology's edges.
CALLS_ANNOTATION = "backout.dev/calls"


def reported_changes(
    store_file: Path, namespace: str | None, since: datetime, until: datetime
) -> list[Change]:
    """Changes posted to POST /v1/changes."""
    store = ChangeStore(store_file)
    try:
        return store.list(since=since, until=until, namespace=namespace)
    finally:
        store.close()


class ClusterFacts(BaseModel):
    """What the cluster tells about an incident besides its changes."""

    edges: list[tuple[str, str]] = []
    recent_rollbacks: int = 0


def cluster_facts(apis: KubeApis, namespace: str) -> ClusterFacts:
    """Topology from `backout.dev/calls` on Deployments; rollbacks backout made here in the last hour."""
    edges: set[tuple[str, str]] = set()
    for deployment in apis.apps.list_namespaced_deployment(namespace).items:
        annotations = deployment.metadata.annotations or {}
        caller = ledger.service_name(deployment.metadata)
        for callee in annotations.get(CALLS_ANNOTATION, "").split(","):
            if callee.strip():
                edges.add((caller, callee.strip()))
    rollbacks = guards.rollbacks_in_last_hour(guards.read_action_log(apis, namespace))
    return ClusterFacts(edges=sorted(edges), recent_rollbacks=rollbacks)


def _queries_for(settings: Settings, request: ContextRequest) -> list[EvidenceQuery]:
    """Configured evidence queries, then any an alert names through its annotations."""
    queries: list[EvidenceQuery] = []
    for configured in settings.evidence_queries:
        text = configured.query.replace("{namespace}", request.namespace or "").replace(
            "{service}", request.service or ""
        )
        queries.append(configured.model_copy(update={"query": text}))
    for alert in request.alerts:
        annotated = alert.annotations.get(EVIDENCE_QUERY_ANNOTATION)
        if annotated:
            direction = alert.annotations.get(EVIDENCE_DIRECTION_ANNOTATION)
            queries.append(
                EvidenceQuery(
                    name=alert.annotations.get(EVIDENCE_METRIC_ANNOTATION, "error_rate"),
                    query=annotated,
                    bad_direction=direction if direction in ("up", "down") else None,  # type: ignore[arg-type]
                    version_label="version",
                )
            )
    unique: dict[str, EvidenceQuery] = {}
    for candidate in queries:
        unique.setdefault(candidate.query, candidate)
    return list(unique.values())


def _step_for(start: datetime, end: datetime) -> float:
    """About EVIDENCE_POINTS points per series, never finer than a second."""
    return max(1.0, (end - start).total_seconds() / EVIDENCE_POINTS)


def _evidence(
    settings: Settings, request: ContextRequest, start: datetime, end: datetime, budget: QueryBudget
) -> tuple[list[MetricSeries], list[str]]:
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
    for query in _queries_for(settings, request):
        results = budget.range(
            settings.prometheus_url, query.name, query.query, start, end, step_s=_step_for(start, end)
        )
        if results is None:
            continue
        for result in results:
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


def _symptom_metric(request: ContextRequest, metrics: list[MetricSeries]) -> str | None:
    """Which series shows the symptom: named by the alert, the eval, or the only metric of the service."""
    for alert in request.alerts:
        named = alert.symptom_metric()
        if named:
            return named
    if request.eval is not None:
        return "eval_score"
    names = {series.name for series in metrics if series.service == request.service}
    return names.pop() if len(names) == 1 else None


def build_bundle(settings: Settings, request: ContextRequest, now: datetime) -> ContextResult:
    since = request.detected_at - timedelta(seconds=request.lookback_s)
    notes: list[str] = []
    changes: dict[str, Change] = {}
    facts = ClusterFacts()
    for change in reported_changes(settings.change_store_file, request.namespace, since, now):
        changes.setdefault(change.id, change)
    if kube_configured(settings):
        try:
            apis = shared_apis(settings)
            namespaces = [request.namespace] if request.namespace else list(settings.allowed_namespaces)
            dry_run = DryRun.of(settings)
            for change in ledger.list_changes(apis, namespaces, since, record_first=True, dry_run=dry_run):
                changes.setdefault(change.id, change)
            if request.namespace:
                facts = cluster_facts(apis, request.namespace)
        except Exception as exc:  # the cluster being away must not hide the other evidence
            notes.append(f"cluster changes unavailable: {exc}")
    own = [change_id for change_id, change in changes.items() if change.author == BACKOUT_AUTHOR]
    if own:
        # backout's own remediations are the cure, not candidate causes: never undo a rollback.
        for change_id in own:
            del changes[change_id]
        notes.append(f"{len(own)} remediation(s) made by backout left out of the candidates")
    # Evidence from shortly before the earliest candidate change (else the lookback) until now.
    earliest = min((change.started_at for change in changes.values()), default=since)
    evidence_start = max(since, min(earliest, request.detected_at) - EVIDENCE_LEAD)
    budget = QueryBudget(settings.prometheus_timeout_s, settings.evidence_budget_s)
    metrics, evidence_notes = _evidence(settings, request, evidence_start, now, budget)
    notes.extend(evidence_notes)
    notes.extend(budget.notes())
    metric_name = _symptom_metric(request, metrics)
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
        topology=Topology(edges=facts.edges),
        changes=sorted(changes.values(), key=lambda c: c.started_at),
        metrics=metrics,
    )
    return ContextResult(
        bundle=bundle,
        notes=notes,
        recent_rollbacks=facts.recent_rollbacks,
        missing_evidence=sorted(budget.missing),
    )


class ContextActivities:
    """The context step of an incident, bound to the worker's settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name="collect_context")
    def collect_context(self, request: ContextRequest) -> ContextResult:
        """Changes from every source, topology and evidence: the incident bundle (runs in a thread)."""
        return build_bundle(self.settings, request, datetime.now(UTC))
