"""`page`: page the owning team (or `team`) at `severity`."""

from __future__ import annotations

from typing import Literal

from incidents.actions.base import Action, Severity


class PageAction(Action):
    position = 50

    type: Literal["page"] = "page"
    severity: Severity = "critical"
    team: str | None = None
