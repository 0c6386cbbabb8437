"""Pure mapping from a planned action and the attributed change to a remediation request."""

from __future__ import annotations

from incidents.actions import PauseRolloutAction, PlannedAction, RollbackAction, ScaleAction
from incidents.bundle import Change
from incidents.models import RemediationRequest

_TARGET_TYPES = {"deployment", "configmap", "secret"}


def remediation_request_for(
    action: PlannedAction, change: Change | None, incident_id: str, default_namespace: str | None
) -> RemediationRequest | str:
    """The request to send, or a sentence saying why none can be built."""
    if isinstance(action, RollbackAction):
        if change is None:
            return "no attributed change to roll back"
        handle = change.rollback
        if handle is None or handle.type not in _TARGET_TYPES or not handle.name:
            return f"change {change.id} ({change.kind} on {change.service}) has no rollback handle backout can use"
        namespace = handle.namespace or change.namespace or default_namespace
        if not namespace:
            return f"change {change.id} names no namespace to roll back in"
        return RemediationRequest(
            incident_id=incident_id,
            operation="rollback",
            target_type=handle.type,  # type: ignore[arg-type]
            name=handle.name,
            namespace=namespace,
            change=change,
            to_revision=action.to_revision,
            to_version=action.to_version,
        )
    if isinstance(action, PauseRolloutAction | ScaleAction):
        name = action.deployment
        namespace = default_namespace
        if name is None and change is not None and change.rollback and change.rollback.type == "deployment":
            name = change.rollback.name
            namespace = change.rollback.namespace or change.namespace or namespace
        if name is None:
            name = change.service if change is not None else None
        if not name or not namespace:
            return f"{action.type} needs a deployment and a namespace"
        return RemediationRequest(
            incident_id=incident_id,
            operation="pause" if isinstance(action, PauseRolloutAction) else "scale",
            target_type="deployment",
            name=name,
            namespace=namespace,
            change=change,
            replicas=action.replicas if isinstance(action, ScaleAction) else None,
        )
    return f"{action.type} is not a remediation"
