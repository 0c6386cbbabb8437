"""Remediation on Kubernetes: roll back, restore, pause, scale. Shared by activities and the CLI.

Every applied action stamps `backout.dev/applied-by=<incident>:<request digest>` on the
object in the same write that changes it, and logs itself in the namespace's action log
(guards.py), so a retried request is recognised and never applied twice.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.kube import diffs, guards, history
from activities.kube.client import KubeApis, retry_on_conflict
from activities.kube.ledger import (
    APPLIED_AT_ANNOTATION,
    APPLIED_BY_ANNOTATION,
    CHANGE_CAUSE_ANNOTATION,
    REVISION_ANNOTATION,
    owned_replica_sets,
    revision_of,
)
from incidents.models import RemediationRequest, RemediationResult
from worker.settings import Settings

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


def request_key(request: RemediationRequest) -> str:
    """Stable across retries of one request: everything but dry_run."""
    payload = request.model_dump(mode="json", exclude={"dry_run"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _bad_input(message: str) -> ApplicationError:
    return ApplicationError(message, type="InvalidRemediation", non_retryable=True)


def _refused(request: RemediationRequest, reason: str) -> RemediationResult:
    return RemediationResult(
        outcome="Failed",
        target=f"{request.target_type}/{request.namespace}/{request.name}",
        dry_run=request.dry_run,
        message=f"refused: {reason}",
    )


def _serialize(apis: KubeApis, obj: Any) -> Any:
    return apis.api_client.sanitize_for_serialization(obj)


def _template_dict(apis: KubeApis, template: Any) -> dict[str, Any]:
    data: dict[str, Any] = _serialize(apis, template)
    labels = data.setdefault("metadata", {}).get("labels") or {}
    labels.pop(POD_TEMPLATE_HASH, None)
    data["metadata"].pop("creationTimestamp", None)
    return data


def remediate(apis: KubeApis, settings: Settings, request: RemediationRequest) -> RemediationResult:
    """Apply (or dry-run) one remediation, guarded and idempotent. Raises ApplicationError on bad input."""
    if settings.allowed_namespaces and request.namespace not in settings.allowed_namespaces:
        allowed = ", ".join(settings.allowed_namespaces)
        return _refused(request, f"namespace {request.namespace!r} is not in the allow list ({allowed})")
    if request.operation in ("pause", "scale") and request.target_type != "deployment":
        raise _bad_input(f"{request.operation} applies to Deployments only, not {request.target_type}")
    if request.operation == "scale" and (request.replicas is None or request.replicas < 0):
        raise _bad_input("scale needs replicas >= 0")
    # Pause and scale may carry the culprit change only as context; a rollback must undo that change.
    if request.operation == "rollback" and request.change is not None and request.change.rollback is not None:
        handle = request.change.rollback
        if handle.type != request.target_type or (handle.name and handle.name != request.name):
            raise _bad_input(
                f"change {request.change.id} undoes {handle.type}/{handle.name}, "
                f"not {request.target_type}/{request.name}"
            )
    key = request_key(request)
    applied_by = f"{request.incident_id}:{key}"
    # Read once: the idempotency check, the rolled-away-from guard and the rate cap all use it.
    log = guards.read_action_log(apis, request.namespace)
    if not request.dry_run:
        previous = guards.find_entry(log, key)
        if previous is not None:
            return previous.result.model_copy(
                update={"message": f"already applied ({previous.result.message})"}
            )
    if request.target_type == "deployment":
        if request.operation == "rollback":
            return retry_on_conflict(
                lambda: _rollback_deployment(apis, settings, request, key, applied_by, log)
            )
        return retry_on_conflict(lambda: _patch_deployment_spec(apis, request, key, applied_by))
    return retry_on_conflict(lambda: _restore_object(apis, settings, request, key, applied_by, log))


def _already_applied(
    apis: KubeApis, request: RemediationRequest, key: str, applied_by: str, obj: Any, target: str
) -> RemediationResult | None:
    """The logged result for a retry whose earlier attempt wrote the object but not the action log."""
    if request.dry_run or (obj.metadata.annotations or {}).get(APPLIED_BY_ANNOTATION) != applied_by:
        return None
    result = RemediationResult(
        outcome="Successful",
        applied=True,
        target=target,
        message=f"already applied by {request.incident_id} (found {APPLIED_BY_ANNOTATION} on the object)",
    )
    return _log(apis, request, key, result)


def _skipped(
    request: RemediationRequest,
    target: str,
    reason: str,
    from_version: str | None = None,
    to_version: str | None = None,
) -> RemediationResult:
    return RemediationResult(
        outcome="Successful",
        target=target,
        dry_run=request.dry_run,
        from_version=from_version,
        to_version=to_version,
        message=f"skipped: {reason}",
    )


def _changed(
    request: RemediationRequest,
    target: str,
    *,
    from_version: str,
    to_version: str,
    diff: str,
    verbs: tuple[str, str],
    detail: str,
) -> RemediationResult:
    """The result of a write; `verbs` is (dry-run verb, applied verb), e.g. ("would set", "set")."""
    would, did = verbs
    return RemediationResult(
        outcome="Successful",
        applied=not request.dry_run,
        dry_run=request.dry_run,
        target=target,
        from_version=from_version,
        to_version=to_version,
        diff=diff,
        message=f"{would if request.dry_run else did} {detail}",
    )


def _server_dry_run(request: RemediationRequest) -> str | None:
    """The API server's dry_run parameter: "All" validates the write without persisting it."""
    return "All" if request.dry_run else None


def _log(
    apis: KubeApis,
    request: RemediationRequest,
    key: str,
    result: RemediationResult,
    rolled_away_from: str | None = None,
    rolled_to: str | None = None,
) -> RemediationResult:
    if not request.dry_run and result.applied:
        entry = guards.ActionLogEntry(
            key=key,
            incident_id=request.incident_id,
            operation=request.operation,
            target=result.target,
            at=datetime.now(UTC),
            rolled_away_from=rolled_away_from,
            rolled_to=rolled_to,
            result=result,
        )
        guards.append_entry(apis, request.namespace, entry)
    return result


def _rate_capped(
    settings: Settings, request: RemediationRequest, log: list[guards.ActionLogEntry]
) -> str | None:
    if request.dry_run:  # a dry run changes nothing, so the cap does not apply
        return None
    count = guards.rollbacks_in_last_hour(log)
    if count >= settings.max_rollbacks_per_namespace_per_hour:
        return (
            f"{count} rollbacks in namespace {request.namespace} in the last hour "
            f"(cap max_rollbacks_per_namespace_per_hour={settings.max_rollbacks_per_namespace_per_hour})"
        )
    return None


def _pick_target_revision(request: RemediationRequest, revisions: list[int], current: int) -> int:
    if request.to_revision is not None:
        if request.to_revision not in revisions:
            raise _bad_input(f"revision {request.to_revision} not found (available: {revisions})")
        return request.to_revision
    if request.change is not None and request.change.rollback is not None:
        changed = request.change.rollback.revision
        if changed is None:
            raise _bad_input(f"change {request.change.id} has no deployment revision to roll back from")
        earlier = [revision for revision in revisions if revision < changed]
        if not earlier:
            raise _bad_input(f"no revision before {changed} is kept (available: {revisions})")
        return max(earlier)
    earlier = [revision for revision in revisions if revision < current]
    if not earlier:
        raise _bad_input(f"no previous revision to roll back to (available: {revisions})")
    return max(earlier)


def _rollback_deployment(
    apis: KubeApis,
    settings: Settings,
    request: RemediationRequest,
    key: str,
    applied_by: str,
    log: list[guards.ActionLogEntry],
) -> RemediationResult:
    deployment: Any = apis.apps.read_namespaced_deployment(request.name, request.namespace)
    target = f"deployment/{request.namespace}/{request.name}"
    if earlier := _already_applied(apis, request, key, applied_by, deployment, target):
        return earlier
    annotations = dict(deployment.metadata.annotations or {})
    if deployment.spec.paused:
        return _refused(request, f"Deployment {request.name} is paused; resume it before rolling back")
    replica_sets = owned_replica_sets(apis, deployment)
    by_revision = {revision_of(rs): rs for rs in replica_sets}
    revisions = sorted(revision for revision in by_revision if revision is not None)
    current = int(annotations.get(REVISION_ANNOTATION, revisions[-1] if revisions else 0))
    wanted = _pick_target_revision(request, revisions, current)
    wanted_rs = by_revision[wanted]
    wanted_hash = (wanted_rs.metadata.labels or {}).get(POD_TEMPLATE_HASH, "")
    current_rs = by_revision.get(current)
    current_hash = (current_rs.metadata.labels or {}).get(POD_TEMPLATE_HASH) if current_rs else None
    if wanted_hash in guards.rolled_away_from(log, request.incident_id, target):
        return _refused(request, f"revision {wanted} is a template this incident already rolled away from")
    before = _template_dict(apis, deployment.spec.template)
    after = _template_dict(apis, wanted_rs.spec.template)
    if before == after:
        reason = f"the current template already matches revision {wanted}"
        return _skipped(request, target, reason, str(current), str(wanted))
    if capped := _rate_capped(settings, request, log):
        return _refused(request, capped)
    new_annotations = {k: v for k, v in annotations.items() if k in BOOKKEEPING_ANNOTATIONS}
    new_annotations.update(
        {k: v for k, v in (wanted_rs.metadata.annotations or {}).items() if k not in BOOKKEEPING_ANNOTATIONS}
    )
    new_annotations[APPLIED_BY_ANNOTATION] = applied_by
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
        request.name, request.namespace, patch, dry_run=_server_dry_run(request)
    )
    result = _changed(
        request,
        target,
        from_version=str(current),
        to_version=str(wanted),
        diff=diffs.yaml_diff(before, _template_dict(apis, updated.spec.template), f"{target} spec.template"),
        verbs=("would roll", "rolled"),
        detail=f"back from revision {current} to {wanted}",
    )
    return _log(apis, request, key, result, rolled_away_from=current_hash, rolled_to=wanted_hash)


def _patch_deployment_spec(
    apis: KubeApis, request: RemediationRequest, key: str, applied_by: str
) -> RemediationResult:
    deployment: Any = apis.apps.read_namespaced_deployment(request.name, request.namespace)
    target = f"deployment/{request.namespace}/{request.name}"
    if earlier := _already_applied(apis, request, key, applied_by, deployment, target):
        return earlier
    before_value: Any
    after_value: Any
    if request.operation == "pause":
        field, before_value, after_value = "paused", bool(deployment.spec.paused), True
    else:
        field, before_value, after_value = "replicas", deployment.spec.replicas, request.replicas
    if before_value == after_value:
        return _skipped(request, target, f"spec.{field} is already {after_value}")
    body = {
        "metadata": {
            "resourceVersion": deployment.metadata.resource_version,
            "annotations": {APPLIED_BY_ANNOTATION: applied_by},
        },
        "spec": {field: after_value},
    }
    updated = apis.apps.patch_namespaced_deployment(
        request.name, request.namespace, body, dry_run=_server_dry_run(request)
    )
    result = _changed(
        request,
        target,
        from_version=str(before_value),
        to_version=str(getattr(updated.spec, field)),
        diff=diffs.yaml_diff({field: before_value}, {field: getattr(updated.spec, field)}, f"{target} spec"),
        verbs=("would set", "set"),
        detail=f"spec.{field} from {before_value} to {after_value}",
    )
    return _log(apis, request, key, result)


def _restore_object(
    apis: KubeApis,
    settings: Settings,
    request: RemediationRequest,
    key: str,
    applied_by: str,
    log: list[guards.ActionLogEntry],
) -> RemediationResult:
    kind: history.ObjectKind = "configmap" if request.target_type == "configmap" else "secret"
    target = f"{kind}/{request.namespace}/{request.name}"
    if kind == "configmap":
        obj: Any = apis.core.read_namespaced_config_map(request.name, request.namespace)
    else:
        obj = apis.core.read_namespaced_secret(request.name, request.namespace)
    if earlier := _already_applied(apis, request, key, applied_by, obj, target):
        return earlier
    history.record_object(apis, kind, obj)
    versions = history.list_versions(apis, kind, request.namespace, request.name)
    recorded = [version.version for version in versions]
    current = recorded[-1]
    if request.to_version is not None:
        if not request.to_version.isdigit():
            raise _bad_input(f"--to-version must be a recorded version number, got {request.to_version!r}")
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
        raise _bad_input(f"{target}: version {wanted} is not recorded (recorded versions: {recorded})")
    for away in guards.rolled_away_from(log, request.incident_id, target):
        if history.load_version_content(apis, kind, request.namespace, request.name, int(away)) == content:
            return _refused(request, f"version {wanted} has content this incident already rolled away from")
    before = history.content_of(obj)
    if before == content:
        reason = f"the current content already matches version {wanted}"
        return _skipped(request, target, reason, str(current), str(wanted))
    if capped := _rate_capped(settings, request, log):
        return _refused(request, capped)
    obj.metadata.annotations = {
        **(obj.metadata.annotations or {}),
        APPLIED_BY_ANNOTATION: applied_by,
        CHANGE_CAUSE_ANNOTATION: f"backout: restore version {wanted} (incident {request.incident_id})",
    }
    obj.data = content["data"] or None
    dry_run = _server_dry_run(request)
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
    result = _changed(
        request,
        target,
        from_version=str(current),
        to_version=str(wanted),
        diff=diff,
        verbs=("would restore", "restored"),
        detail=f"{target} from version {current} to {wanted}",
    )
    return _log(apis, request, key, result, rolled_away_from=str(current), rolled_to=str(wanted))
