"""rollback: a Deployment back to an earlier revision (`kubectl rollout undo` semantics), or a
ConfigMap/Secret back to a recorded version (history.py).

Guards: never back to a template or content this incident already rolled away from (no
ping-pong), and at most `max_rollbacks_per_namespace_per_hour` rollbacks per namespace.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from activities.kube import diffs, guards, history
from activities.kube.actions.base import (
    Executor,
    Remediation,
    already_applied,
    bad_input,
    changed,
    log,
    rate_capped,
    refused,
    server_dry_run,
    skipped,
)
from activities.kube.client import KubeApis
from activities.kube.ledger import (
    APPLIED_AT_ANNOTATION,
    APPLIED_BY_ANNOTATION,
    CHANGE_CAUSE_ANNOTATION,
    REVISION_ANNOTATION,
    controlled_by,
    owned_replica_sets,
    revision_of,
)
from incidents.remediation import RemediationRequest, RemediationResult

# Annotations a rollback keeps from the Deployment rather than copying from the old ReplicaSet.
BOOKKEEPING_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
POD_TEMPLATE_HASH = "pod-template-hash"


def _serialize(apis: KubeApis, obj: Any) -> Any:
    return apis.api_client.sanitize_for_serialization(obj)


def _template_dict(apis: KubeApis, template: Any) -> dict[str, Any]:
    data: dict[str, Any] = _serialize(apis, template)
    labels = data.setdefault("metadata", {}).get("labels") or {}
    labels.pop(POD_TEMPLATE_HASH, None)
    data["metadata"].pop("creationTimestamp", None)
    return data


def check(request: RemediationRequest) -> None:
    """A rollback must undo the change it names (pause and scale only carry it as context)."""
    if request.change is not None and request.change.rollback is not None:
        handle = request.change.rollback
        if handle.type != request.target_type or (handle.name and handle.name != request.name):
            raise bad_input(
                f"change {request.change.id} undoes {handle.type}/{handle.name}, "
                f"not {request.target_type}/{request.name}"
            )


def rollback(run: Remediation) -> RemediationResult:
    if run.request.target_type == "deployment":
        return _rollback_deployment(run)
    return _restore_object(run)


def _namespace_replica_sets(apis: KubeApis, request: RemediationRequest) -> list[Any] | None:
    """Every ReplicaSet of the Deployment's namespace, read with the Deployment: listing only its own
    needs its selector, which would put a round trip after the Deployment's read on the way to the
    write."""
    if request.target_type != "deployment":
        return None
    items: list[Any] = apis.apps.list_namespaced_replica_set(request.namespace).items
    return items


EXECUTOR = Executor(
    "rollback",
    frozenset({"deployment", "configmap", "secret"}),
    rollback,
    check,
    read_with_target=_namespace_replica_sets,
)


def _current_among(deployment: Any, listed: list[Any] | None) -> list[Any] | None:
    """The Deployment's ReplicaSets among `listed` if they hold the revision it is at; else None
    (a list made at the same time as the Deployment's read can miss a rollout's newest ReplicaSet)."""
    if listed is None:
        return None
    owned = controlled_by(deployment, listed)
    current = (deployment.metadata.annotations or {}).get(REVISION_ANNOTATION)
    if current is None or not any(str(revision_of(rs)) == current for rs in owned):
        return None
    return owned


def _pick_target_revision(request: RemediationRequest, revisions: list[int], current: int) -> int:
    if request.to_revision is not None:
        if request.to_revision not in revisions:
            raise bad_input(f"revision {request.to_revision} not found (available: {revisions})")
        return request.to_revision
    if request.change is not None and request.change.rollback is not None:
        changed = request.change.rollback.revision
        if changed is None:
            raise bad_input(f"change {request.change.id} has no deployment revision to roll back from")
        earlier = [revision for revision in revisions if revision < changed]
        if not earlier:
            raise bad_input(f"no revision before {changed} is kept (available: {revisions})")
        return max(earlier)
    earlier = [revision for revision in revisions if revision < current]
    if not earlier:
        raise bad_input(f"no previous revision to roll back to (available: {revisions})")
    return max(earlier)


def _rollback_deployment(run: Remediation) -> RemediationResult:
    apis, request = run.apis, run.request
    deployment: Any = run.read_target()
    target = run.target
    if earlier := already_applied(run, deployment):
        return earlier
    annotations = dict(deployment.metadata.annotations or {})
    if deployment.spec.paused:
        return refused(request, f"Deployment {request.name} is paused; resume it before rolling back")
    replica_sets = _current_among(deployment, run.read_with_target_once())
    if replica_sets is None:
        replica_sets = owned_replica_sets(apis, deployment)
    by_revision = {revision_of(rs): rs for rs in replica_sets}
    revisions = sorted(revision for revision in by_revision if revision is not None)
    current = int(annotations.get(REVISION_ANNOTATION, revisions[-1] if revisions else 0))
    wanted = _pick_target_revision(request, revisions, current)
    wanted_rs = by_revision[wanted]
    wanted_hash = (wanted_rs.metadata.labels or {}).get(POD_TEMPLATE_HASH, "")
    current_rs = by_revision.get(current)
    current_hash = (current_rs.metadata.labels or {}).get(POD_TEMPLATE_HASH) if current_rs else None
    if wanted_hash in guards.rolled_away_from(run.log, request.incident_id, target):
        return refused(request, f"revision {wanted} is a template this incident already rolled away from")
    before = _template_dict(apis, deployment.spec.template)
    after = _template_dict(apis, wanted_rs.spec.template)
    if before == after:
        reason = f"the current template already matches revision {wanted}"
        return skipped(run, reason, str(current), str(wanted))
    if capped := rate_capped(run):
        return refused(request, capped)
    new_annotations = {k: v for k, v in annotations.items() if k in BOOKKEEPING_ANNOTATIONS}
    new_annotations.update(
        {k: v for k, v in (wanted_rs.metadata.annotations or {}).items() if k not in BOOKKEEPING_ANNOTATIONS}
    )
    new_annotations[APPLIED_BY_ANNOTATION] = run.applied_by
    new_annotations[APPLIED_AT_ANNOTATION] = datetime.now(UTC).isoformat()
    new_annotations[CHANGE_CAUSE_ANNOTATION] = (
        f"backout: rollback to revision {wanted} (incident {request.incident_id})"
    )
    patch = [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": deployment.metadata.resource_version},
        {"op": "replace", "path": "/spec/template", "value": after},
        {"op": "replace", "path": "/metadata/annotations", "value": new_annotations},
    ]
    updated = apis.apps.patch_namespaced_deployment(
        request.name, request.namespace, patch, dry_run=server_dry_run(request)
    )
    result = changed(
        run,
        from_version=str(current),
        to_version=str(wanted),
        diff=diffs.yaml_diff(before, _template_dict(apis, updated.spec.template), f"{target} spec.template"),
        verbs=("would roll", "rolled"),
        detail=f"back from revision {current} to {wanted}",
    )
    return log(run, result, rolled_away_from=current_hash, rolled_to=wanted_hash)


def _restore_object(run: Remediation) -> RemediationResult:
    apis, request = run.apis, run.request
    kind: history.ObjectKind = "configmap" if request.target_type == "configmap" else "secret"
    target = f"{kind}/{request.namespace}/{request.name}"
    obj: Any = run.read_target()
    if earlier := already_applied(run, obj):
        return earlier
    # The current content is recorded first (a dry run only says which version it would be).
    noted = history.record_object(apis, kind, obj, dry_run=request.dry_run)
    versions = history.list_versions(apis, kind, request.namespace, request.name)
    recorded = [version.version for version in versions]
    current = noted.version if noted is not None and request.dry_run else recorded[-1]
    if request.to_version is not None:
        if not request.to_version.isdigit():
            raise bad_input(f"--to-version must be a recorded version number, got {request.to_version!r}")
        wanted = int(request.to_version)
    elif (
        request.change is not None and request.change.rollback is not None and request.change.rollback.version
    ):
        wanted = int(request.change.rollback.version) - 1
    else:
        wanted = recorded[-2] if len(recorded) >= 2 else 0
    content = (
        history.load_version_content(apis, kind, request.namespace, request.name, wanted) if wanted else None
    )
    if content is None:
        raise bad_input(f"{target}: version {wanted} is not recorded (recorded versions: {recorded})")
    for away in guards.rolled_away_from(run.log, request.incident_id, target):
        if history.load_version_content(apis, kind, request.namespace, request.name, int(away)) == content:
            return refused(request, f"version {wanted} has content this incident already rolled away from")
    before = history.content_of(obj)
    if before == content:
        reason = f"the current content already matches version {wanted}"
        return skipped(run, reason, str(current), str(wanted))
    if capped := rate_capped(run):
        return refused(request, capped)
    obj.metadata.annotations = {
        **(obj.metadata.annotations or {}),
        APPLIED_BY_ANNOTATION: run.applied_by,
        CHANGE_CAUSE_ANNOTATION: f"backout: restore version {wanted} (incident {request.incident_id})",
    }
    obj.data = content["data"] or None
    dry_run = server_dry_run(request)
    if kind == "configmap":
        obj.binary_data = content["binaryData"] or None
        updated = apis.core.replace_namespaced_config_map(
            request.name, request.namespace, obj, dry_run=dry_run
        )
        diff = diffs.yaml_diff(before, history.content_of(updated), f"{target} data")
    else:
        updated = apis.core.replace_namespaced_secret(request.name, request.namespace, obj, dry_run=dry_run)
        diff = diffs.secret_diff(before, history.content_of(updated), f"{target} data")
    if not request.dry_run:
        history.record_object(apis, kind, updated)
    result = changed(
        run,
        from_version=str(current),
        to_version=str(wanted),
        diff=diff,
        verbs=("would restore", "restored"),
        detail=f"{target} from version {current} to {wanted}",
    )
    return log(run, result, rolled_away_from=str(current), rolled_to=str(wanted))
