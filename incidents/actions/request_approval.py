"""`request_approval`: gate every later mutating action on a human decision."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field

from incidents.actions.base import Action
from incidents.durations import Seconds


class ApprovalAction(Action):
    position = 40

    type: Literal["request_approval"] = "request_approval"
    approvers: list[str] = Field(default_factory=list)
    timeout_s: Seconds = Field(
        default=900,
        gt=0,
        validation_alias=AliasChoices("timeout", "timeout_s"),
        description="seconds, or '15m'",
    )
    on_timeout: Literal["proceed", "abort", "escalate"] = "escalate"
