"""pause_rollout: pause a Deployment's rollout (spec.paused = true)."""

from __future__ import annotations

from activities.kube.actions.base import Executor, Remediation, set_deployment_field
from incidents.remediation import RemediationResult


def pause(run: Remediation) -> RemediationResult:
    return set_deployment_field(run, "paused", True)


EXECUTOR = Executor("pause_rollout", frozenset({"deployment"}), pause)
