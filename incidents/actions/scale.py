"""`scale`: set a Deployment's replicas (the incident's service by default)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from incidents.actions.base import Action, Mode, Planned, deployment_target
from incidents.bundle import Change
from incidents.remediation import RemediationRequest

if TYPE_CHECKING:
    from incidents.models import DecisionContext


class ScaleAction(Action):
    position = 30
    mutates = True

    type: Literal["scale"] = "scale"
    deployment: str | None = Field(default=None, description="default: the incident's service")
    replicas: int = Field(ge=0)

    def plan(self, mode: Mode, ctx: DecisionContext) -> Planned:
        return Planned(self.model_copy(update={"mode": mode, "deployment": self.deployment or ctx.service}))

    def request(
        self, change: Change | None, incident_id: str, default_namespace: str | None
    ) -> RemediationRequest | str:
        request = deployment_target(self, self.deployment, change, incident_id, default_namespace)
        return request if isinstance(request, str) else request.model_copy(update={"replicas": self.replicas})
