"""`notify`: post `message` in the incident's chat thread, or in `channel` when one is named."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from incidents.actions.base import Action


class NotifyAction(Action):
    position = 60

    type: Literal["notify"] = "notify"
    channel: str | None = Field(
        default=None, description="a chat channel, e.g. '#ml-quality' (default: the thread)"
    )
    message: str | None = None
