"""Remediation on Kubernetes: the guarded, idempotent frame every executor runs in. Shared by the
activities and the CLI.

Every applied action stamps `backout.dev/applied-by=<incident>:<request digest>` on the
object in the same write that changes it, and logs itself in the namespace's action log
(guards.py), so a retried request is recognised and never applied twice. The executors, one
per operation, are in `activities/kube/actions/`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import partial
from typing import Any

from kubernetes.client.exceptions import ApiException

from activities.kube import guards
from activities.kube.actions import EXECUTORS
from activities.kube.actions.base import Remediation, bad_input, read_target, refused
from activities.kube.client import KubeApis, retry_on_conflict
from activities.kube.dry_run import DryRun
from activities.kube.parallel import at_once
from config import Settings
from incidents.remediation import RemediationRequest, RemediationResult


def request_key(request: RemediationRequest) -> str:
    """Stable across retries of one request: everything but dry_run."""
    payload = request.model_dump(mode="json", exclude={"dry_run"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def remediate(apis: KubeApis, settings: Settings, request: RemediationRequest) -> RemediationResult:
    """Apply (or dry-run) one remediation, guarded and idempotent. Raises ApplicationError on bad input.

    Where the settings ask for dry runs (kube_dry_run, kube_dry_run_namespaces) the request becomes
    one, whatever it says: the write is sent as a server-side dry run and its result says so."""
    if not request.dry_run and DryRun.of(settings).applies(request.namespace):
        request = request.model_copy(update={"dry_run": True})
    if not settings.namespace_allowed(request.namespace):
        allowed = ", ".join(settings.allowed_namespaces) or "empty"
        return refused(request, f"namespace {request.namespace!r} is not in the allow list ({allowed})")
    outside = _outside_its_namespace(request)
    if outside is not None:
        return refused(request, outside)
    executor = EXECUTORS.get(request.operation)
    if executor is None:
        raise bad_input(f"unknown operation {request.operation!r} (known: {', '.join(sorted(EXECUTORS))})")
    if request.target_type not in executor.targets:
        kinds = ", ".join(sorted(executor.targets))
        raise bad_input(f"{request.operation} applies to {kinds} only, not {request.target_type}")
    executor.check(request)
    key = request_key(request)
    # Read once: the idempotency check, the rolled-away-from guard and the rate cap all use it. The
    # object to write does not depend on it, so both are read at once (two round trips become one
    # on the way to the write; a request the log answers has read its object for nothing). So is
    # what else the executor reads before its write, when that does not depend on the object.
    read_log = partial(guards.read_action_log, apis, request.namespace)
    read_target_now = partial(_target_if_readable, apis, request)
    with_target: Any | None = None
    if executor.read_with_target is None:
        log, target = at_once(read_log, read_target_now)
    else:
        log, target, with_target = at_once(
            read_log, read_target_now, partial(_if_readable, executor.read_with_target, apis, request)
        )
    if not request.dry_run:
        previous = guards.find_entry(log, key)
        if previous is not None:
            return previous.result.model_copy(
                update={"message": f"already applied ({previous.result.message})"}
            )
    prefetched = [target] if target is not None else []
    read_with = [with_target] if with_target is not None else []
    run = Remediation(
        apis, settings, request, key, f"{request.incident_id}:{key}", log, prefetched, read_with
    )
    return retry_on_conflict(lambda: executor.apply(run))


def _target_if_readable(apis: KubeApis, request: RemediationRequest) -> Any | None:
    """The target, or None when it cannot be read: the executor then reads it itself, so the error
    (a 404, a 403) comes after the action log had its say, as when the reads were one after another."""
    return _if_readable(read_target, apis, request)


def _if_readable(
    read: Callable[[KubeApis, RemediationRequest], Any], apis: KubeApis, request: RemediationRequest
) -> Any | None:
    try:
        return read(apis, request)
    except ApiException:
        return None


def _outside_its_namespace(request: RemediationRequest) -> str | None:
    """Why a remediation of a change reaches outside the change's own namespace, if it does: a
    rollback handle (or a request) naming another namespace than the change would let one change
    steer backout at an unrelated target."""
    change = request.change
    if change is None or not change.namespace:
        return None
    handle = change.rollback
    if handle is not None and handle.namespace and handle.namespace != change.namespace:
        return (
            f"change {change.id} in namespace {change.namespace} has a rollback handle in namespace "
            f"{handle.namespace}: a change is only undone in its own namespace"
        )
    if request.namespace != change.namespace:
        return f"change {change.id} is in namespace {change.namespace}, not {request.namespace}"
    return None
