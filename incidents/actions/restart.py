"""`restart`: restart a Deployment's pods, as `kubectl rollout restart` does: a new rollout of the
same template (the attributed change's Deployment by default, else the incident's service)."""

from __future__ import annotations

from typing import Literal

from incidents.actions.base import DeploymentAction


class RestartAction(DeploymentAction):
    position = 25

    type: Literal["restart"] = "restart"
