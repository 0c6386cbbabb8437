"""`record`: a note in the incident's action log (`- record: "text"` works too)."""

from __future__ import annotations

from typing import Any, Literal

from incidents.actions.base import Action


class RecordAction(Action):
    position = 90

    type: Literal["record"] = "record"
    note: str = ""

    @classmethod
    def from_shorthand(cls, value: Any) -> Any:
        return {"note": value} if isinstance(value, str) else super().from_shorthand(value)
