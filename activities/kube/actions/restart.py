"""restart: a rollout restart of a Deployment (`kubectl rollout restart`).

Stamps `kubectl.kubernetes.io/restartedAt` on the pod template, which makes the controller roll
out new pods of an otherwise unchanged template. A paused Deployment is refused (its rollout
would not start), as kubectl refuses it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from activities.kube import diffs
from activities.kube.actions.base import (
    Executor,
    Remediation,
    already_applied,
    changed,
    log,
    refused,
    server_dry_run,
)
from activities.kube.ledger import APPLIED_BY_ANNOTATION
from incidents.remediation import RemediationResult

RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"


def restart(run: Remediation) -> RemediationResult:
    request = run.request
    deployment: Any = run.read_target()
    if earlier := already_applied(run, deployment):
        return earlier
    if deployment.spec.paused:
        return refused(request, f"Deployment {request.name} is paused; resume it before restarting")
    before = (deployment.spec.template.metadata.annotations or {}).get(RESTARTED_AT_ANNOTATION)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "metadata": {
            "resourceVersion": deployment.metadata.resource_version,
            "annotations": {APPLIED_BY_ANNOTATION: run.applied_by},
        },
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}}},
    }
    updated = run.apis.apps.patch_namespaced_deployment(
        request.name, request.namespace, body, dry_run=server_dry_run(request)
    )
    after = (updated.spec.template.metadata.annotations or {}).get(RESTARTED_AT_ANNOTATION)
    result = changed(
        run,
        from_version=before or "never restarted",
        to_version=str(after),
        diff=diffs.yaml_diff(
            {RESTARTED_AT_ANNOTATION: before},
            {RESTARTED_AT_ANNOTATION: after},
            f"{run.target} spec.template.metadata.annotations",
        ),
        verbs=("would restart", "restarted"),
        detail=f"the pods of {request.name} (restartedAt {after})",
    )
    return log(run, result)


EXECUTOR = Executor("restart", frozenset({"deployment"}), restart)
