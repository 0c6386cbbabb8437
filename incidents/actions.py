"""The actions a runbook decision plans, typed by their `type` discriminator.

They cross Temporal boundaries inside a Decision (incidents.models) and are what the
incident workflow carries out.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["shadow", "approve", "auto"]
Severity = Literal["critical", "error", "warning", "info"]


class _ActionBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Mode = "auto"


class RollbackAction(_ActionBase):
    """Roll back the attributed change (or an explicit one) by its rollback handle."""

    type: Literal["rollback"] = "rollback"
    change_id: str | None = None
    to_revision: int | None = None
    to_version: str | None = None


class PauseRolloutAction(_ActionBase):
    type: Literal["pause_rollout"] = "pause_rollout"
    deployment: str | None = None


class ScaleAction(_ActionBase):
    type: Literal["scale"] = "scale"
    deployment: str | None = None
    replicas: int = Field(ge=0)


class ApprovalAction(_ActionBase):
    """Gate every later mutating action on a human decision."""

    type: Literal["request_approval"] = "request_approval"
    approvers: list[str] = Field(default_factory=list)
    timeout_s: int = Field(default=900, gt=0)
    on_timeout: Literal["proceed", "abort", "escalate"] = "escalate"


class PageAction(_ActionBase):
    type: Literal["page"] = "page"
    severity: Severity = "critical"
    team: str | None = None


class NotifyAction(_ActionBase):
    type: Literal["notify"] = "notify"
    channel: str | None = None
    message: str | None = None


class VerifyAction(_ActionBase):
    """Wait for recovery: rollout complete, then the symptom gone for `duration_s`."""

    type: Literal["wait_verify"] = "wait_verify"
    duration_s: int = Field(default=120, ge=0)
    timeout_s: int = Field(default=600, gt=0)
    metric: str | None = None
    eval: bool = False


class EscalateAction(_ActionBase):
    type: Literal["escalate"] = "escalate"
    team: str | None = None
    reason: str | None = None


class RecordAction(_ActionBase):
    type: Literal["record"] = "record"
    note: str = ""


PlannedAction = Annotated[
    RollbackAction
    | PauseRolloutAction
    | ScaleAction
    | ApprovalAction
    | PageAction
    | NotifyAction
    | VerifyAction
    | EscalateAction
    | RecordAction,
    Field(discriminator="type"),
]
MUTATING_ACTIONS: frozenset[str] = frozenset({"rollback", "pause_rollout", "scale"})
