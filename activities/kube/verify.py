"""Verify a remediation: wait for a Deployment rollout to finish, or fail, within a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from activities.kube.client import KubeApis
from activities.kube.ledger import APPLIED_BY_ANNOTATION
from incidents.remediation import VerificationResult, VerifyRequest

POLL_INTERVAL_S = 1.0


def rollout_state(deployment: Any) -> tuple[str, str, dict[str, Any]]:
    """('done' | 'failed' | 'progressing', message, details) as `kubectl rollout status` judges it."""
    spec, status = deployment.spec, deployment.status
    desired = spec.replicas if spec.replicas is not None else 1
    details: dict[str, Any] = {
        "generation": deployment.metadata.generation,
        "observed_generation": status.observed_generation,
        "replicas": desired,
        "updated_replicas": status.updated_replicas or 0,
        "available_replicas": status.available_replicas or 0,
        "ready_replicas": status.ready_replicas or 0,
        "total_replicas": status.replicas or 0,
    }
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            details["reason"] = "ProgressDeadlineExceeded"
            return "failed", f"rollout failed: ProgressDeadlineExceeded: {condition.message}", details
    if (status.observed_generation or 0) < (deployment.metadata.generation or 0):
        return "progressing", "waiting for the controller to observe the new generation", details
    if spec.paused:
        return "progressing", "the Deployment is paused", details
    if details["updated_replicas"] < desired:
        return "progressing", f"{details['updated_replicas']} of {desired} replicas updated", details
    if details["total_replicas"] > details["updated_replicas"]:
        old = details["total_replicas"] - details["updated_replicas"]
        return "progressing", f"{old} old replicas pending termination", details
    if details["available_replicas"] < desired:
        return (
            "progressing",
            f"{details['available_replicas']} of {desired} updated replicas available",
            details,
        )
    return "done", f"rollout complete: {desired} replicas updated and available", details


def verify(
    apis: KubeApis,
    request: VerifyRequest,
    heartbeat: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> VerificationResult:
    """Successful when the rollout completes, Failed on ProgressDeadlineExceeded, Inconclusive on timeout."""
    if request.target_type != "deployment":
        return _verify_object(apis, request)
    deadline = time.monotonic() + request.timeout_s
    message, details = "", dict[str, Any]()
    while True:
        deployment = apis.apps.read_namespaced_deployment(request.name, request.namespace)
        state, message, details = rollout_state(deployment)
        if state == "done":
            return VerificationResult(outcome="Successful", message=message, details=details)
        if state == "failed":
            return VerificationResult(outcome="Failed", message=message, details=details)
        if heartbeat is not None:
            heartbeat(message)
        if time.monotonic() >= deadline:
            return timed_out(request, message, details, pod_diagnosis(apis, deployment))
        sleep(POLL_INTERVAL_S)


def timed_out(request: VerifyRequest, message: str, details: dict[str, Any], pods: str) -> VerificationResult:
    """Inconclusive: the rollout is still going at the deadline; says why its pods are not available."""
    if pods:
        details["pods"] = pods
    return VerificationResult(
        outcome="Inconclusive",
        message=f"rollout not finished after {request.timeout_s}s: {message}"
        + (f"; pods: {pods}" if pods else ""),
        details=details,
    )


def pod_diagnosis(apis: KubeApis, deployment: Any, limit: int = 3) -> str:
    """Why the Deployment's pods are not available, in the words an on-call engineer looks for:
    the pod's phase and the scheduler's or container's reason (best effort, never raises)."""
    labels = (deployment.spec.selector.match_labels or {}) if deployment.spec.selector else {}
    if not labels:
        return ""
    selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
    try:
        pods = apis.core.list_namespaced_pod(deployment.metadata.namespace, label_selector=selector).items
    except ApiException as exc:
        return f"pods unreadable ({exc.status} {exc.reason})"
    reasons: list[str] = []
    for pod in pods:
        if pod.metadata.deletion_timestamp is not None:
            continue
        status = pod.status
        ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])
        if ready:
            continue
        why = _pod_reason(pod)
        reasons.append(f"{pod.metadata.name} {status.phase or 'Unknown'}" + (f" ({why})" if why else ""))
    if not reasons:
        return ""
    more = f"; and {len(reasons) - limit} more" if len(reasons) > limit else ""
    return "; ".join(reasons[:limit]) + more


def _pod_reason(pod: Any) -> str:
    for condition in pod.status.conditions or []:
        if condition.type == "PodScheduled" and condition.status != "True":
            return f"unscheduled: {condition.reason}: {condition.message}"
    for container in pod.status.container_statuses or []:
        waiting = container.state.waiting if container.state else None
        if waiting is not None and waiting.reason:
            return f"{container.name} waiting: {waiting.reason}"
    if not pod.spec.node_name:
        return "not yet scheduled"
    return f"on {pod.spec.node_name}, not ready"


def _verify_object(apis: KubeApis, request: VerifyRequest) -> VerificationResult:
    """ConfigMaps and Secrets take effect on write; confirm the object carries backout's stamp."""
    try:
        if request.target_type == "configmap":
            obj: Any = apis.core.read_namespaced_config_map(request.name, request.namespace)
        else:
            obj = apis.core.read_namespaced_secret(request.name, request.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return VerificationResult(
                outcome="Failed", message=f"{request.target_type}/{request.name} is gone"
            )
        raise
    applied_by = (obj.metadata.annotations or {}).get(APPLIED_BY_ANNOTATION)
    if applied_by is None:
        return VerificationResult(
            outcome="Inconclusive", message=f"{request.target_type}/{request.name} carries no backout restore"
        )
    return VerificationResult(
        outcome="Successful",
        message=f"{request.target_type}/{request.name} holds the restored content",
        details={"applied_by": applied_by, "resource_version": obj.metadata.resource_version},
    )
