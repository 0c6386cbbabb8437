"""`wait_verify`: wait for recovery: rollout complete, then the symptom gone for `duration`."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field

from incidents.actions.base import Action
from incidents.durations import Seconds


class WaitVerifyAction(Action):
    position = 70

    type: Literal["wait_verify"] = "wait_verify"
    duration_s: Seconds = Field(
        default=120,
        ge=0,
        validation_alias=AliasChoices("duration", "duration_s"),
        description="the symptom must stay gone this long (seconds, or '2m')",
    )
    timeout_s: Seconds = Field(default=600, gt=0, validation_alias=AliasChoices("timeout", "timeout_s"))
    metric: str | None = Field(
        default=None,
        description="verify with the alerts about this metric only (their rule or symptom metric)",
    )
    eval: bool = Field(default=False, description="verify by re-running the service's golden set")
