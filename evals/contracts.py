"""The contracts of EvalWorkflow and its activities (everything that crosses Temporal)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from evals.models import RunSummary


class EvalWorkflowInput(BaseModel):
    manifest_path: str
    state_dir: str | None = None
    endpoint: str | None = None


class EvalRunRequest(BaseModel):
    manifest_path: str
    state_dir: str | None = None
    endpoint: str | None = None
    run_id: str


class EvalRunRecord(BaseModel):
    summary: RunSummary
    manifest_name: str
    service: str
    namespace: str | None = None
    group: str


class EvalLookRequest(BaseModel):
    manifest_path: str
    state_dir: str | None = None
    run_id: str


class EvalWorkflowResult(BaseModel):
    status: Literal["ok", "regression", "service_unreachable"]
    run_id: str
    pass_rate: float | None = None
    look_status: str | None = None
    regression: bool = False
    p_value: float | None = None
    delta: float | None = None
    incident_id: str | None = None
    message: str = ""
