"""`rollback`: undo the attributed change (or a named one) by its rollback handle.

When Flux or Argo CD applies the change's object (the ledger recorded its Git origin), the rollback
is the GitOps handshake (workflows/gitops.py), shaped by `gitops` and `merge_deadline`:
- `revert_pr` (default): suspend the owner, roll back in the cluster, push a revert of the culprit
  commit to a branch and open a pull/merge request; resume once it is merged.
- `revert_push`: the same, with the revert pushed straight to the tracked branch.
- `suspend_only`: suspend and roll back in the cluster; a human reverts in Git and resumes.
- `refuse`: change nothing; page a human with the commit to revert.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import AliasChoices, Field, model_serializer
from pydantic_core.core_schema import SerializerFunctionWrapHandler

from incidents.actions.base import Action, Mode, Planned
from incidents.actions.record import RecordAction
from incidents.bundle import Change, ChangeKind
from incidents.durations import Seconds
from incidents.gitops import GitOpsPolicy
from incidents.remediation import TARGET_TYPES, RemediationRequest

if TYPE_CHECKING:
    from incidents.models import DecisionContext


class RollbackAction(Action):
    position = 10
    mutates = True

    type: Literal["rollback"] = "rollback"
    kinds: list[ChangeKind] = Field(
        default_factory=list, description="only roll back if the change has one of these kinds"
    )
    change_id: str | None = Field(default=None, description="default: the top attributed change")
    to_revision: int | None = Field(default=None, description="Deployment revision (default: the one before)")
    to_version: str | None = Field(default=None, description="recorded ConfigMap/Secret version")
    gitops: GitOpsPolicy = Field(
        default="revert_pr",
        description="a GitOps-managed change: revert_pr, revert_push, suspend_only or refuse",
    )
    merge_deadline_s: Seconds = Field(
        default=3600,
        gt=0,
        validation_alias=AliasChoices("merge_deadline", "merge_deadline_s"),
        description="the revert must be on the tracked branch within this (seconds, or '30m'); "
        "else the owners are paged and reconciliation stays suspended",
    )

    @model_serializer(mode="wrap")
    def _plan_without_kinds(self, handler: SerializerFunctionWrapHandler) -> Any:
        # A plan names its change instead; `kinds` only shows where a runbook set it, and the GitOps
        # fields only where they differ from their defaults (plans of other runbooks read as before).
        data = handler(self)
        if isinstance(data, dict):
            if not self.kinds:
                data.pop("kinds", None)
            for name in ("gitops", "merge_deadline_s"):
                if getattr(self, name) == type(self).model_fields[name].default:
                    data.pop(name, None)
        return data

    def plan(self, mode: Mode, ctx: DecisionContext) -> Planned:
        wanted = self.change_id
        if wanted is None and ctx.attribution is not None and ctx.attribution.ranking:
            wanted = ctx.attribution.ranking[0].change_id
        if wanted is None:
            note = "rollback skipped: no attributed change"
            return Planned(RecordAction(mode=mode, note=note), note)
        change = next((item for item in ctx.changes if item.id == wanted), None)
        if self.kinds and (change is None or change.kind not in self.kinds):
            kind = change.kind if change else "unknown"
            note = f"rollback skipped: top change {wanted} is of kind {kind}, runbook allows {self.kinds}"
            return Planned(RecordAction(mode=mode, note=note), note)
        return Planned(self.model_copy(update={"mode": mode, "change_id": wanted, "kinds": []}))

    def names_change(self) -> str | None:
        return self.change_id

    def request(
        self, change: Change | None, incident_id: str, default_namespace: str | None
    ) -> RemediationRequest | str:
        if change is None:
            return "no attributed change to roll back"
        handle = change.rollback
        if handle is None or handle.type not in TARGET_TYPES or not handle.name:
            return f"change {change.id} ({change.kind} on {change.service}) has no rollback handle backout can use"
        namespace = handle.namespace or change.namespace or default_namespace
        if not namespace:
            return f"change {change.id} names no namespace to roll back in"
        return RemediationRequest(
            incident_id=incident_id,
            operation=self.type,
            target_type=handle.type,  # type: ignore[arg-type]
            name=handle.name,
            namespace=namespace,
            change=change,
            to_revision=self.to_revision,
            to_version=self.to_version,
        )
