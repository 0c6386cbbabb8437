"""What every runbook action is: parsed from its YAML step, planned for one incident, and, when it
changes the cluster, turned into a remediation request.

Subclasses live one per module in this package (the module named like the action) and are
found by `incidents.actions`; the Kubernetes side of a mutating action is its executor in
`activities/kube/actions/`. Pure: pydantic and backout's contracts only, so the workflow and
the runbook engine use actions inside Temporal's sandbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from incidents.bundle import Change
from incidents.remediation import RemediationRequest

if TYPE_CHECKING:
    from incidents.models import DecisionContext

Mode = Literal["shadow", "approve", "auto"]
Severity = Literal["critical", "error", "warning", "info"]
MODE_RANK: dict[str, int] = {"shadow": 0, "approve": 1, "auto": 2}


class Planned(NamedTuple):
    """A step's planned action, and a note when the step could not plan itself (it became a record)."""

    action: Action
    note: str | None = None


class Action(BaseModel):
    """One step of a runbook. Its `type` is the YAML key of the step and the name of the action."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # Where the action is listed among the others (lint messages, the JSON schema).
    position: ClassVar[int] = 100
    # Whether it changes the cluster: guarded by approval, verified, never run on a resolved alert.
    mutates: ClassVar[bool] = False

    type: str
    # In a runbook: an override that may only be stricter than the runbook's mode ("auto" = none).
    # In a plan: the mode the action runs in.
    mode: Mode = "auto"

    @field_validator("mode", mode="before")
    @classmethod
    def _unset_is_auto(cls, value: Any) -> Any:
        return "auto" if value is None else value

    @classmethod
    def action_name(cls) -> str:
        return str(cls.model_fields["type"].default)

    @classmethod
    def from_shorthand(cls, value: Any) -> Any:
        """The step's YAML value as a mapping: `- pause_rollout:` (nothing) reads as `{}`."""
        return {} if value is None else value

    def mode_override(self) -> Mode | None:
        """The mode written in the runbook, if any."""
        return self.mode if "mode" in self.model_fields_set else None

    def plan(self, mode: Mode, ctx: DecisionContext) -> Planned:
        """This step for this incident; by default as written, in the effective mode."""
        return Planned(self.model_copy(update={"mode": mode}))

    def request(
        self, change: Change | None, incident_id: str, default_namespace: str | None
    ) -> RemediationRequest | str:
        """The remediation to send, or a sentence saying why none can be built."""
        return f"{self.type} is not a remediation"

    def names_change(self) -> str | None:
        """The change this action is about when it names one (else the top attributed change)."""
        return None


class DeploymentAction(Action):
    """An action on one Deployment: the one named, else the top attributed change's, else the service's."""

    mutates = True

    deployment: str | None = Field(
        default=None, description="default: the attributed change's deployment, else the incident's service"
    )

    def plan(self, mode: Mode, ctx: DecisionContext) -> Planned:
        top_id = ctx.attribution.ranking[0].change_id if ctx.attribution and ctx.attribution.ranking else None
        rolled_out = deployment_of(next((change for change in ctx.changes if change.id == top_id), None))
        deployment = self.deployment or (rolled_out[0] if rolled_out else None) or ctx.service
        return Planned(self.model_copy(update={"mode": mode, "deployment": deployment}))

    def request(
        self, change: Change | None, incident_id: str, default_namespace: str | None
    ) -> RemediationRequest | str:
        return deployment_target(self, self.deployment, change, incident_id, default_namespace)


def effective_mode(runbook_mode: Mode, override: Mode | None) -> Mode:
    """An action may be stricter than its runbook, never looser."""
    if override is None or MODE_RANK[override] > MODE_RANK[runbook_mode]:
        return runbook_mode
    return override


def deployment_of(change: Change | None) -> tuple[str, str | None] | None:
    """The Deployment (name, namespace) a change rolled out, when its undo handle names one."""
    handle = change.rollback if change is not None else None
    if handle is None or handle.type != "deployment" or not handle.name:
        return None
    return handle.name, handle.namespace or (change.namespace if change is not None else None)


def deployment_target(
    action: Action,
    deployment: str | None,
    change: Change | None,
    incident_id: str,
    default_namespace: str | None,
) -> RemediationRequest | str:
    """A request on a Deployment: the named one, else the attributed change's, else the service's."""
    name, namespace = deployment, default_namespace
    rolled_out = deployment_of(change)
    if name is None and rolled_out is not None:
        name, namespace = rolled_out[0], rolled_out[1] or namespace
    if name is None:
        name = change.service if change is not None else None
    if not name or not namespace:
        return f"{action.type} needs a deployment and a namespace"
    return RemediationRequest(
        incident_id=incident_id,
        operation=action.type,
        target_type="deployment",
        name=name,
        namespace=namespace,
        change=change,
    )
