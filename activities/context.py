"""collect_context: assemble the incident bundle (spec v1) from every change source and the evidence
(collect_and_attribute: and rank its changes in the same activity)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

from pydantic import BaseModel
from temporalio import activity

from activities.attribution import AttributionActivities
from activities.changes_store import ChangeStore, StoreUnavailable
from activities.evidence import EVIDENCE_LEAD, collect_evidence
from activities.gitops.changes import ledger_annotator
from activities.kube import guards, ledger
from activities.kube.activities import resolve_namespaces
from activities.kube.client import kube_configured, shared_apis
from activities.kube.dry_run import DryRun
from activities.kube.parallel import at_once
from activities.kube.reads import ClusterReads
from activities.prometheus import QueryBudget
from config import Settings
from incidents.bundle import (
    BundleIncident,
    Change,
    IncidentBundle,
    MetricSeries,
    Symptom,
    Topology,
)
from incidents.models import AttributedContext, ContextRequest, ContextResult

# An incident's bundle keeps at most this many candidate changes (the most recent): it crosses
# Temporal as one payload, and a reporter could post any number.
MAX_BUNDLE_CHANGES = 200
# Author the ledger gives to changes backout itself made (rollbacks, restores).
BACKOUT_AUTHOR = "backout"
# Deployment annotation naming the services a workload calls: the topology's edges.
CALLS_ANNOTATION = "backout.dev/calls"


def reported_changes(
    settings: Settings, namespace: str | None, since: datetime, until: datetime
) -> list[Change]:
    """Changes posted to POST /v1/changes in the incident's namespace (every allowed one when the
    incident names none); a change stored without a namespace is never a candidate."""
    store = ChangeStore.of(settings)
    try:
        listed = store.list(since=since, until=until, namespace=namespace)
    finally:
        store.close()
    return [change for change in listed if settings.namespace_allowed(change.namespace)]


class ClusterFacts(BaseModel):
    """What the cluster tells about an incident besides its changes."""

    edges: list[tuple[str, str]] = []
    recent_rollbacks: int = 0


def cluster_facts(reads: ClusterReads, namespace: str, config_maps_listed: bool = False) -> ClusterFacts:
    """Topology from `backout.dev/calls` on Deployments; rollbacks backout made here in the last hour.

    `config_maps_listed`: the changes' listing lists the namespace's ConfigMaps (`reads` shares the
    list), so the action log is taken from it rather than read on its own."""
    if config_maps_listed:
        action_log = guards.action_log_among(reads.config_maps(namespace))
    else:
        # Read first: the Deployments' list is likely in flight for the changes meanwhile.
        action_log = guards.read_action_log(reads.apis, namespace)
    rollbacks = guards.rollbacks_in_last_hour(action_log)
    edges: set[tuple[str, str]] = set()
    for deployment in reads.deployments(namespace):
        annotations = deployment.metadata.annotations or {}
        caller = ledger.service_name(deployment.metadata)
        for callee in annotations.get(CALLS_ANNOTATION, "").split(","):
            if callee.strip():
                edges.add((caller, callee.strip()))
    return ClusterFacts(edges=sorted(edges), recent_rollbacks=rollbacks)


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
    """Changes, topology and evidence for one incident, only from namespaces backout may look at,
    with times an alert claims clamped to the lookback."""
    notes: list[str] = []
    if request.namespace is not None and not settings.namespace_allowed(request.namespace):
        # Intake refuses such alerts; an incident opened before the allow list changed collects nothing.
        note = f"namespace {request.namespace} is outside the allow list: no changes or evidence collected"
        return ContextResult(
            bundle=_bundle(request, request.detected_at, [], [], ClusterFacts()), notes=[note]
        )
    lookback = timedelta(seconds=request.lookback_s)
    detected = min(max(request.detected_at, now - lookback), now)
    if detected != request.detected_at:
        notes.append(f"detection time {request.detected_at.isoformat()} clamped to {detected.isoformat()}")
    since = detected - lookback
    changes: dict[str, Change] = {}
    cluster_error: str | None = None
    facts = ClusterFacts()
    if kube_configured(settings):
        try:
            apis = shared_apis(settings)
            namespaces = [request.namespace] if request.namespace else resolve_namespaces(apis, settings, [])
            # The namespace's lists serve the changes and the topology (and the action log) alike.
            reads = ClusterReads(apis)
            dry_run, record_first = DryRun.of(settings), True
            list_changes = partial(
                ledger.list_changes,
                apis,
                namespaces,
                since,
                record_first=record_first,
                dry_run=dry_run,
                annotate=ledger_annotator(settings),
                reads=reads,
            )
            if request.namespace:
                # The topology and the recent rollbacks do not depend on the changes: read at once.
                swept = ledger.sweeps_first(request.namespace, record_first, dry_run)
                listed, facts = at_once(list_changes, partial(cluster_facts, reads, request.namespace, swept))
            else:
                listed = list_changes()
            for change in listed:
                changes.setdefault(change.id, change)
        except Exception as exc:  # the cluster being away must not hide the other evidence
            cluster_error = f"cluster changes unavailable: {exc}"
            notes.append(cluster_error)
    # After the cluster's own record: a reported change never shadows a change of the ledger.
    try:
        reported = reported_changes(settings, request.namespace, since, now)
    except StoreUnavailable as exc:  # like the cluster: its absence must not hide the rest
        reported = []
        notes.append(f"reported changes unavailable: {exc}")
    for change in reported:
        changes.setdefault(change.id, change)
    own = [change_id for change_id, change in changes.items() if change.author == BACKOUT_AUTHOR]
    if own:
        # backout's own remediations are the cure, not candidate causes: never undo a rollback.
        for change_id in own:
            del changes[change_id]
        notes.append(f"{len(own)} remediation(s) made by backout left out of the candidates")
    # Evidence from shortly before the earliest candidate change (else the lookback) until now.
    candidates = sorted(changes.values(), key=lambda c: c.started_at)
    if len(candidates) > MAX_BUNDLE_CHANGES:
        notes.append(f"{len(candidates) - MAX_BUNDLE_CHANGES} older candidate change(s) left out")
        candidates = candidates[-MAX_BUNDLE_CHANGES:]
    earliest = min((change.started_at for change in candidates), default=since)
    evidence_start = max(since, min(earliest, detected) - EVIDENCE_LEAD)
    budget = QueryBudget(settings.prometheus_timeout_s, settings.evidence_budget_s)
    metrics, evidence_notes = collect_evidence(settings, request, evidence_start, now, now, budget)
    notes.extend(evidence_notes)
    notes.extend(budget.notes())
    return ContextResult(
        bundle=_bundle(request, detected, candidates, metrics, facts),
        notes=notes,
        recent_rollbacks=facts.recent_rollbacks,
        missing_evidence=sorted(budget.missing),
        cluster_error=cluster_error,
    )


def _bundle(
    request: ContextRequest,
    detected: datetime,
    changes: list[Change],
    metrics: list[MetricSeries],
    facts: ClusterFacts,
) -> IncidentBundle:
    metric_name = _symptom_metric(request, metrics)
    return IncidentBundle(
        version=1,
        incident=BundleIncident(
            id=request.incident_id,
            detected_at=detected,
            service=request.service,
            namespace=request.namespace,
            source=request.source,
            labels=request.labels,
            symptom=Symptom(metric=metric_name) if metric_name else None,
        ),
        topology=Topology(edges=facts.edges),
        changes=changes,
        metrics=metrics,
    )


class ContextActivities:
    """The context step of an incident, bound to the worker's settings (and the worker's
    attribution step, which collect_and_attribute runs right after it)."""

    def __init__(self, settings: Settings, attribution: AttributionActivities | None = None) -> None:
        self.settings = settings
        self.attribution = attribution if attribution is not None else AttributionActivities(settings)

    @activity.defn(name="collect_context")
    def collect_context(self, request: ContextRequest) -> ContextResult:
        """Changes from every source, topology and evidence: the incident bundle (runs in a thread)."""
        return build_bundle(self.settings, request, datetime.now(UTC))

    @activity.defn(name="collect_and_attribute")
    def collect_and_attribute(self, request: ContextRequest) -> AttributedContext:
        """The bundle and its ranking in one local activity: the decision waits for one instead of
        two in a row, and the bundle is not sent back out of the workflow to be ranked."""
        context = self.collect_context(request)
        return AttributedContext(
            context=context, attribution=self.attribution.attribute_bundle(context.bundle)
        )
