"""Typed records of the GitOps handshake: who owns an object, where its desired state lives in
Git, which commit introduced it, what was suspended, what was written back to Git."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from incidents.remediation import Outcome

ReconcilerKind = Literal["Kustomization", "HelmRelease", "Application"]
Tool = Literal["flux", "argocd"]
FileStatus = Literal["added", "modified", "deleted", "renamed", "copied", "type-changed", "unknown"]


class ObjectRef(BaseModel):
    """A Kubernetes object as the reconciler applied it."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    def describe(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind.lower()}/{where}{self.name}"


class ReconcilerRef(BaseModel):
    """The one Kustomization, HelmRelease or Application that applies an object."""

    tool: Tool
    kind: ReconcilerKind
    name: str
    namespace: str
    evidence: str = Field(description="the label or annotation that named it")

    def describe(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


class GitSource(BaseModel):
    """Where the reconciler reads the object's desired state."""

    repo_url: str
    branch: str | None = Field(
        default=None,
        description="the tracked branch (`HEAD`: the remote's default); None for a tag or commit",
    )
    path: str = Field(description="folder inside the repository, normalized without ./ (empty: the root)")
    revision: str | None = Field(default=None, description="commit SHA the reconciler last applied")
    target_namespace: str | None = None


class Ownership(BaseModel):
    """An object, its reconciler and that reconciler's Git source (None when not resolvable)."""

    object: ObjectRef
    reconciler: ReconcilerRef
    source: GitSource | None = None
    unresolved_reason: str | None = None


class ChangedFile(BaseModel):
    path: str
    status: FileStatus
    previous_path: str | None = None


class CommitInfo(BaseModel):
    sha: str
    parents: list[str]
    author_name: str
    author_email: str
    authored_at: datetime
    committed_at: datetime
    subject: str
    body: str = ""
    files: list[ChangedFile] = Field(default_factory=list)

    @property
    def short_sha(self) -> str:
        return self.sha[:12]


class CulpritCommit(BaseModel):
    """The commit that introduced an object's content at a revision, and what it changed in it."""

    object: ObjectRef
    source: GitSource
    commit: CommitInfo
    manifest_path: str = Field(description="the file that declares the object at `source.revision`")
    object_diff: str = Field(description="unified diff of the object's manifest, before -> after the commit")
    matches_live: bool | None = Field(
        default=None, description="whether the live object carries this content (None: not compared)"
    )


class SuspensionRecord(BaseModel):
    """What backout suspended, so exactly that can be resumed, and only by the incident that did it."""

    reconciler: ReconcilerRef
    incident_id: str
    suspended_at: datetime
    already_suspended: bool = Field(description="suspended before backout came: resume leaves it so")
    original_automated: dict[str, Any] | None = Field(
        default=None, description="Argo CD: spec.syncPolicy.automated as it was, restored on resume"
    )


class SuspensionResult(BaseModel):
    outcome: Outcome
    message: str
    record: SuspensionRecord | None = None
    dry_run: bool = Field(default=False, description="a server-side dry run: nothing was suspended")


class ResumeResult(BaseModel):
    outcome: Outcome
    message: str
    resumed: bool = False
    dry_run: bool = False


class RevertCommit(BaseModel):
    sha: str
    branch: str
    reverts: str
    pushed_to: str = Field(description="the remote branch the commit was pushed to")
    diff: str


class RevertResult(BaseModel):
    """A revert written to Git, or why not: Failed carries the branch and the diff a human needs."""

    outcome: Outcome
    message: str
    mode: Literal["branch", "push"]
    branch: str
    revert: RevertCommit | None = None
    already_reverted: bool = False
    conflict_files: list[str] = Field(default_factory=list)
    diff: str = Field(default="", description="the change the revert makes (or would make)")
    dry_run: bool = Field(default=False, description="built, never pushed")


class ChangeRequest(BaseModel):
    """A pull request (GitHub) or merge request (GitLab)."""

    provider: Literal["github", "gitlab"]
    number: int
    url: str
    state: Literal["open", "merged", "closed"]
    head_branch: str
    base_branch: str


class ChangeRequestResult(BaseModel):
    outcome: Outcome
    message: str
    change_request: ChangeRequest | None = None


class RevertLanded(BaseModel):
    """Whether the tracked branch holds the reverted state, and the evidence."""

    landed: bool
    branch: str
    branch_tip: str
    evidence: str


class ReconcilerStatus(BaseModel):
    reconciler: ReconcilerRef
    suspended: bool
    ready: bool | None = None
    applied_revision: str | None = Field(default=None, description="the commit SHA last applied")
    sync_status: str | None = Field(default=None, description="Argo CD: Synced / OutOfSync / Unknown")
    message: str = ""


class ReconciledResult(BaseModel):
    """Whether the reconciler applied `expected_revision` and the live object carries its content."""

    outcome: Outcome
    message: str
    status: ReconcilerStatus | None = None
    object_matches: bool | None = None


# --- the handshake as the incident sees it (runbook policy, previews, progress) ----------------

GitOpsPolicy = Literal["revert_pr", "revert_push", "suspend_only", "refuse"]
GITOPS_POLICIES: tuple[str, ...] = GitOpsPolicy.__args__  # type: ignore[attr-defined]
GitOpsStage = Literal[
    "prepared",
    "suspended",
    "rolled_back",
    "awaiting_merge",
    "landed",
    "resumed",
    "reconciled",
    "failed",
    "refused",
    "dry_run",
    "left_suspended",
]


class RevertPreview(BaseModel):
    """What the handshake would write to Git: shown in shadow mode, approval requests and dry runs."""

    policy: GitOpsPolicy
    reconciler: str = Field(description="the Kustomization, HelmRelease or Application to suspend")
    repository: str
    tracked_branch: str | None = None
    commit: str = Field(description="the culprit commit's SHA")
    commit_author: str
    commit_subject: str
    target: str = Field(description="where the revert goes: the tracked branch, or a branch and a request")
    revert_sha: str | None = Field(default=None, description="the revert commit built (never pushed)")
    diff: str = ""
    message: str = ""

    def describe(self) -> str:
        action = {
            "revert_pr": f"revert {self.commit[:12]} through a pull request ({self.target})",
            "revert_push": f"push a revert of {self.commit[:12]} to {self.target}",
            "suspend_only": f"leave the revert of {self.commit[:12]} to a human",
            "refuse": f"refuse: a human reverts {self.commit[:12]}",
        }[self.policy]
        return (
            f"suspend {self.reconciler}, roll back in the cluster, {action} "
            f'(commit by {self.commit_author}: "{self.commit_subject}")'
        )


class GitOpsRemediation(BaseModel):
    """The GitOps handshake of one incident, as far as it went: what was suspended (so exactly that
    is resumed), what was written to Git, when it landed, what the reconciler applied."""

    change_id: str
    target: str = Field(description="the object rolled back, kind/namespace/name")
    policy: GitOpsPolicy
    merge_deadline_s: int
    stage: GitOpsStage = "prepared"
    message: str = ""
    dry_run: bool = False
    ownership: Ownership | None = None
    culprit: CulpritCommit | None = None
    suspension: SuspensionRecord | None = None
    revert: RevertResult | None = None
    change_request: ChangeRequest | None = None
    landed: RevertLanded | None = None
    reconciled: ReconciledResult | None = None
    suspended_at: datetime | None = None
    rolled_back_at: datetime | None = None
    revert_written_at: datetime | None = None
    deadline_at: datetime | None = None
    landed_at: datetime | None = None
    resumed_at: datetime | None = None
    reconciled_at: datetime | None = None

    @property
    def waiting(self) -> bool:
        """Written to Git (or suspended) and not finished: the durable fix is still to come."""
        return self.stage in ("rolled_back", "awaiting_merge", "landed", "resumed")

    def describe_revert(self) -> str:
        """Where the revert is, for pages: the branch, the request, the commit."""
        parts: list[str] = []
        if self.revert is not None:
            if self.revert.revert is not None:
                parts.append(f"revert commit {self.revert.revert.sha[:12]} on branch {self.revert.branch}")
            else:
                parts.append(f"branch {self.revert.branch}")
        if self.change_request is not None:
            parts.append(f"request {self.change_request.url} ({self.change_request.state})")
        return ", ".join(parts) or "nothing written to Git"
