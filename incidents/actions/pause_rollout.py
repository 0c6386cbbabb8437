"""`pause_rollout`: pause a Deployment's rollout (the attributed change's Deployment by default)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from incidents.actions.base import Action, Mode, Planned, deployment_of, deployment_target
from incidents.bundle import Change
from incidents.remediation import RemediationRequest

if TYPE_CHECKING:
    from incidents.models import DecisionContext


class PauseRolloutAction(Action):
    position = 20
    mutates = True

    type: Literal["pause_rollout"] = "pause_rollout"
    deployment: str | None = Field(default=None, description="default: the attributed change's deployment")

    def plan(self, mode: Mode, ctx: DecisionContext) -> Planned:
        top_id = ctx.attribution.ranking[0].change_id if ctx.attribution and ctx.attribution.ranking else None
        rolled_out = deployment_of(next((change for change in ctx.changes if change.id == top_id), None))
        deployment = self.deployment or (rolled_out[0] if rolled_out else None) or ctx.service
        return Planned(self.model_copy(update={"mode": mode, "deployment": deployment}))

    def request(
        self, change: Change | None, incident_id: str, default_namespace: str | None
    ) -> RemediationRequest | str:
        return deployment_target(self, self.deployment, change, incident_id, default_namespace)
