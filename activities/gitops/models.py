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


class ResumeResult(BaseModel):
    outcome: Outcome
    message: str
    resumed: bool = False


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
