"""Remediation and verification contracts: what the workflow asks the cluster for, and the typed results.

Results are typed Successful / Failed / Inconclusive / Error (Argo Rollouts style).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from incidents.bundle import Change

Outcome = Literal["Successful", "Failed", "Inconclusive", "Error"]
TargetType = Literal["deployment", "configmap", "secret"]
TARGET_TYPES: frozenset[str] = frozenset(TargetType.__args__)  # type: ignore[attr-defined]
# Operation names requests carried before they equalled action names (in-flight activity inputs).
_LEGACY_OPERATIONS = {"pause": "pause_rollout"}


class RemediationRequest(BaseModel):
    """One change to the cluster; `operation` is the name of the mutating action that planned it."""

    incident_id: str
    operation: str = Field(min_length=1)
    target_type: TargetType
    name: str
    namespace: str
    change: Change | None = None
    to_revision: int | None = None
    to_version: str | None = None
    replicas: int | None = None
    dry_run: bool = False

    @field_validator("operation", mode="before")
    @classmethod
    def _current_name(cls, value: Any) -> Any:
        return _LEGACY_OPERATIONS.get(value, value) if isinstance(value, str) else value


class RemediationResult(BaseModel):
    outcome: Outcome
    applied: bool = False
    dry_run: bool = False
    target: str
    from_version: str | None = None
    to_version: str | None = None
    diff: str = ""
    message: str = ""


class VerifyRequest(BaseModel):
    target_type: TargetType
    name: str
    namespace: str
    timeout_s: int = 300


class VerificationResult(BaseModel):
    outcome: Outcome
    message: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
