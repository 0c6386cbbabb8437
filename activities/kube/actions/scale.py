"""scale: set a Deployment's replicas."""

from __future__ import annotations

from activities.kube.actions.base import Executor, Remediation, bad_input, set_deployment_field
from incidents.remediation import RemediationRequest, RemediationResult


def check(request: RemediationRequest) -> None:
    if request.replicas is None or request.replicas < 0:
        raise bad_input("scale needs replicas >= 0")


def scale(run: Remediation) -> RemediationResult:
    return set_deployment_field(run, "replicas", run.request.replicas)


EXECUTOR = Executor("scale", frozenset({"deployment"}), scale, check)
