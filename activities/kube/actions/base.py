"""What every Kubernetes executor shares: the remediation in progress and the typed results.

An executor applies one operation (the name of a mutating runbook action) to one object. The
frame in `activities/kube/remediation.py` has already checked the allow list, read the
namespace's action log (and, at the same time, the object) and answered retries; the executor
takes the object (`run.read_target()`), returns the earlier result if this request already wrote
it (`already_applied`), writes once with `backout.dev/applied-by` stamped in the same write, and
logs an applied result (`log`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.kube import diffs, guards
from activities.kube.client import KubeApis
from activities.kube.ledger import APPLIED_BY_ANNOTATION
from config import Settings
from incidents.remediation import RemediationRequest, RemediationResult, TargetType


def read_target(apis: KubeApis, request: RemediationRequest) -> Any:
    """The object the request writes, as the apiserver has it now."""
    if request.target_type == "deployment":
        return apis.apps.read_namespaced_deployment(request.name, request.namespace)
    if request.target_type == "configmap":
        return apis.core.read_namespaced_config_map(request.name, request.namespace)
    return apis.core.read_namespaced_secret(request.name, request.namespace)


@dataclass(frozen=True)
class Remediation:
    """One request being applied: the cluster, the guards' inputs and the idempotency key."""

    apis: KubeApis
    settings: Settings
    request: RemediationRequest
    key: str
    applied_by: str
    log: list[guards.ActionLogEntry]
    # The target as read alongside the action log, for the first attempt only.
    prefetched: list[Any] = dataclasses.field(default_factory=list)
    # What the executor's `read_with_target` read alongside them, for the first attempt only.
    read_with_target: list[Any] = dataclasses.field(default_factory=list)

    @property
    def target(self) -> str:
        return f"{self.request.target_type}/{self.request.namespace}/{self.request.name}"

    def read_target(self) -> Any:
        """The object to write: the one read with the action log the first time, then a fresh read
        (an attempt after a 409 must start from what the apiserver has now)."""
        if self.prefetched:
            return self.prefetched.pop()
        return read_target(self.apis, self.request)

    def read_with_target_once(self) -> Any | None:
        """What the executor's `read_with_target` read with the target, the first time it is asked
        for; None after that (a later attempt reads afresh) or when that read failed."""
        return self.read_with_target.pop() if self.read_with_target else None


@dataclass(frozen=True)
class Executor:
    """How one operation is applied: the targets it accepts, a check of the request, the write."""

    operation: str
    targets: frozenset[TargetType]
    apply: Callable[[Remediation], RemediationResult]
    check: Callable[[RemediationRequest], None] = lambda request: None
    # A read the write needs besides the target that does not depend on it: made at once with the
    # action log and the target (it may answer None when this request needs nothing more).
    read_with_target: Callable[[KubeApis, RemediationRequest], Any | None] | None = None


def bad_input(message: str) -> ApplicationError:
    return ApplicationError(message, type="InvalidRemediation", non_retryable=True)


def refused(request: RemediationRequest, reason: str) -> RemediationResult:
    return RemediationResult(
        outcome="Failed",
        target=f"{request.target_type}/{request.namespace}/{request.name}",
        dry_run=request.dry_run,
        message=f"refused: {reason}",
    )


def skipped(
    run: Remediation, reason: str, from_version: str | None = None, to_version: str | None = None
) -> RemediationResult:
    return RemediationResult(
        outcome="Successful",
        target=run.target,
        dry_run=run.request.dry_run,
        from_version=from_version,
        to_version=to_version,
        message=f"skipped: {reason}",
    )


def changed(
    run: Remediation, *, from_version: str, to_version: str, diff: str, verbs: tuple[str, str], detail: str
) -> RemediationResult:
    """The result of a write; `verbs` is (dry-run verb, applied verb), e.g. ("would set", "set")."""
    would, did = verbs
    return RemediationResult(
        outcome="Successful",
        applied=not run.request.dry_run,
        dry_run=run.request.dry_run,
        target=run.target,
        from_version=from_version,
        to_version=to_version,
        diff=diff,
        message=f"{would if run.request.dry_run else did} {detail}",
    )


def server_dry_run(request: RemediationRequest) -> str | None:
    """The API server's dry_run parameter: "All" validates the write without persisting it."""
    return "All" if request.dry_run else None


def log(
    run: Remediation,
    result: RemediationResult,
    rolled_away_from: str | None = None,
    rolled_to: str | None = None,
) -> RemediationResult:
    """Record an applied result in the namespace's action log (retries and guards read it)."""
    if not run.request.dry_run and result.applied:
        entry = guards.ActionLogEntry(
            key=run.key,
            incident_id=run.request.incident_id,
            operation=run.request.operation,
            target=result.target,
            at=datetime.now(UTC),
            rolled_away_from=rolled_away_from,
            rolled_to=rolled_to,
            result=result,
        )
        guards.append_entry(run.apis, run.request.namespace, entry)
    return result


def already_applied(run: Remediation, obj: Any) -> RemediationResult | None:
    """The logged result for a retry whose earlier attempt wrote the object but not the action log."""
    if run.request.dry_run or (obj.metadata.annotations or {}).get(APPLIED_BY_ANNOTATION) != run.applied_by:
        return None
    result = RemediationResult(
        outcome="Successful",
        applied=True,
        target=run.target,
        message=f"already applied by {run.request.incident_id} (found {APPLIED_BY_ANNOTATION} on the object)",
    )
    return log(run, result)


def rate_capped(run: Remediation) -> str | None:
    """Why the namespace's rollback budget for the hour forbids this write, if it does."""
    if run.request.dry_run:  # a dry run changes nothing, so the cap does not apply
        return None
    count = guards.rollbacks_in_last_hour(run.log)
    cap = run.settings.max_rollbacks_per_namespace_per_hour
    if count >= cap:
        return (
            f"{count} rollbacks in namespace {run.request.namespace} in the last hour "
            f"(cap max_rollbacks_per_namespace_per_hour={cap})"
        )
    return None


def set_deployment_field(run: Remediation, field: str, value: Any) -> RemediationResult:
    """Set one field of a Deployment's spec (a merge patch guarded by resourceVersion)."""
    request = run.request
    deployment: Any = run.read_target()
    if earlier := already_applied(run, deployment):
        return earlier
    before = getattr(deployment.spec, field)
    if field == "paused":
        before = bool(before)
    if before == value:
        return skipped(run, f"spec.{field} is already {value}")
    body = {
        "metadata": {
            "resourceVersion": deployment.metadata.resource_version,
            "annotations": {APPLIED_BY_ANNOTATION: run.applied_by},
        },
        "spec": {field: value},
    }
    updated = run.apis.apps.patch_namespaced_deployment(
        request.name, request.namespace, body, dry_run=server_dry_run(request)
    )
    after = getattr(updated.spec, field)
    result = changed(
        run,
        from_version=str(before),
        to_version=str(after),
        diff=diffs.yaml_diff({field: before}, {field: after}, f"{run.target} spec"),
        verbs=("would set", "set"),
        detail=f"spec.{field} from {before} to {value}",
    )
    return log(run, result)
