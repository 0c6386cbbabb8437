"""Writing the revert of a culprit commit to Git, and telling whether the tracked branch holds it.

Idempotent under retries: a revert already on the tracked branch (found by Git's own
"This reverts commit <sha>." line) or on this incident's branch is reported, not written again.
A direct push never forces: when someone pushed meanwhile, the revert is rebuilt on the new tip.
"""

from __future__ import annotations

import logging
from typing import Literal

from activities.gitops.git import GitRepository
from activities.gitops.manifests import find_manifest
from incidents.gitops import CulpritCommit, RevertCommit, RevertLanded, RevertResult

log = logging.getLogger(__name__)
Mode = Literal["branch", "push"]


class RevertWriter:
    """Reverts one culprit commit for one incident in one repository (the caller holds its lock)."""

    def __init__(
        self, repo: GitRepository, culprit: CulpritCommit, mode: Mode, work_branch: str, note: str
    ) -> None:
        self.repo = repo
        self.culprit = culprit
        self.commit = culprit.commit
        self.mode = mode
        self.work_branch = work_branch
        self.note = note

    def _failed(self, message: str, **extra: object) -> RevertResult:
        return RevertResult(
            outcome="Failed",
            message=message,
            mode=self.mode,
            branch=self.work_branch,
            **extra,  # type: ignore[arg-type]
        )

    def _found(self, sha: str, branch: str, message: str, already_reverted: bool) -> RevertResult:
        """A revert that exists already (on the tracked branch, or on our branch from a retry)."""
        diff = self.repo.diff(f"{sha}^", sha)
        revert = RevertCommit(sha=sha, branch=branch, reverts=self.commit.sha, pushed_to=branch, diff=diff)
        return RevertResult(
            outcome="Successful",
            message=message,
            mode=self.mode,
            branch=branch,
            revert=revert,
            already_reverted=already_reverted,
            diff=diff,
        )

    def write(self, tracked: str | None, dry_run: bool, attempts: int) -> RevertResult:
        repo, commit = self.repo, self.commit
        repo_url = self.culprit.source.repo_url
        if not tracked:
            return self._failed(f"{repo_url} is followed at a tag or commit: no branch to revert on")
        if not repo.has_commit(commit.sha):
            return self._failed(f"commit {commit.short_sha} is not in {repo_url}")
        target = tracked if self.mode == "push" else self.work_branch
        for _attempt in range(attempts):
            tip = repo.branch_tip(tracked)
            if tip is None:
                return self._failed(f"branch {tracked} does not exist in {repo_url}")
            if not repo.is_ancestor(commit.sha, tip):
                return self._failed(
                    f"commit {commit.short_sha} is no longer on {tracked} (history rewritten?)"
                )
            existing = repo.find_revert_of(commit.sha, tip)
            if existing is not None:
                message = f"{tracked} already holds {existing[:12]}, a revert of {commit.short_sha}"
                return self._found(existing, tracked, message, already_reverted=True)
            branch_tip = repo.branch_tip(self.work_branch) if self.mode == "branch" else None
            reused = repo.find_revert_of(commit.sha, branch_tip) if branch_tip else None
            if reused is not None:
                message = f"branch {self.work_branch} already holds {reused[:12]} (a retry)"
                return self._found(reused, self.work_branch, message, already_reverted=False)
            attempt = repo.revert_onto(commit, tip, self.note)
            if attempt.conflict_files:
                return self._failed(
                    f"reverting {commit.short_sha} onto {tracked} ({tip[:12]}) conflicts in "
                    f"{', '.join(attempt.conflict_files)}: a human must resolve it on a branch from {tracked}",
                    conflict_files=attempt.conflict_files,
                    diff=attempt.diff,
                )
            if attempt.sha is None:
                return RevertResult(
                    outcome="Successful",
                    message=f"{tracked} ({tip[:12]}) no longer carries the change of {commit.short_sha}",
                    mode=self.mode,
                    branch=tracked,
                    already_reverted=True,
                )
            revert = RevertCommit(
                sha=attempt.sha, branch=target, reverts=commit.sha, pushed_to="", diff=attempt.diff
            )
            result = RevertResult(
                outcome="Successful",
                message="",
                mode=self.mode,
                branch=target,
                revert=revert,
                diff=attempt.diff,
            )
            if dry_run:
                result.message = (
                    f"dry run: would push {attempt.sha[:12]} reverting {commit.short_sha} to {target}"
                )
                return result
            if repo.push(attempt.sha, target) != "rejected":
                repo.fetch()
                revert.pushed_to = target
                result.message = f"pushed {attempt.sha[:12]} reverting {commit.short_sha} to {target}"
                return result
            if self.mode == "branch":
                return self._failed(
                    f"branch {self.work_branch} exists with other commits; not overwriting it"
                )
            log.info("push to %s rejected (a concurrent push); rebuilding the revert on the new tip", tracked)
            repo.fetch()
        return self._failed(f"{tracked} kept moving: {attempts} pushes rejected")


def revert_landed(
    repo: GitRepository, culprit: CulpritCommit, branch: str, revert_sha: str | None
) -> RevertLanded:
    """Whether `branch` holds the reverted state: our revert, any revert of the culprit, or (after a
    squash or rebase merge, which leaves no revert commit) the object's pre-culprit content."""
    tip = repo.branch_tip(branch) if branch else None
    if tip is None:
        return RevertLanded(
            landed=False, branch=branch, branch_tip="", evidence=f"branch {branch!r} not found"
        )

    def landed(evidence: str) -> RevertLanded:
        return RevertLanded(landed=True, branch=branch, branch_tip=tip, evidence=evidence)

    short = culprit.commit.short_sha
    if revert_sha and repo.has_commit(revert_sha) and repo.is_ancestor(revert_sha, tip):
        return landed(f"revert {revert_sha[:12]} is on {branch}")
    other = repo.find_revert_of(culprit.commit.sha, tip)
    if other is not None:
        return landed(f"{other[:12]} on {branch} reverts {short}")
    parent = culprit.commit.parents[0] if culprit.commit.parents else None
    at_tip = find_manifest(repo, tip, culprit.source, culprit.object)
    before = find_manifest(repo, parent, culprit.source, culprit.object) if parent else None
    if before is not None and at_tip is not None and at_tip[1] == before[1]:
        return landed(f"{culprit.object.describe()} on {branch} equals its content before {short}")
    return RevertLanded(
        landed=False, branch=branch, branch_tip=tip, evidence=f"{branch} ({tip[:12]}) still carries {short}"
    )
