"""`escalate`: stop here and hand the incident to a human (`team`, `reason`)."""

from __future__ import annotations

from typing import Literal

from incidents.actions.base import Action


class EscalateAction(Action):
    position = 80

    type: Literal["escalate"] = "escalate"
    team: str | None = None
    reason: str | None = None
