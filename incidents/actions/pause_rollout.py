"""`pause_rollout`: pause a Deployment's rollout (the attributed change's Deployment by default)."""

from __future__ import annotations

from typing import Literal

from incidents.actions.base import DeploymentAction


class PauseRolloutAction(DeploymentAction):
    position = 20

    type: Literal["pause_rollout"] = "pause_rollout"
