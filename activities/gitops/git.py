"""Git operations through the `git` command: a cached bare clone per repository, read-only
queries on it, and reverts written in throwaway worktrees and pushed.

Credentials never touch argv, the clone's config or a URL: the token travels as an
`http.<origin>.extraHeader` passed through GIT_CONFIG_* environment variables, scoped to
the repository's origin. Every message that leaves this module is redacted.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import SecretStr

from activities.gitops.secrets import Redactor
from config.gitops import GitIdentity
from incidents.gitops import ChangedFile, CommitInfo, FileStatus

MAX_DIFF_CHARS = 20_000
STATUS_LETTERS: dict[str, FileStatus] = {
    "A": "added",
    "M": "modified",
    "D": "deleted",
    "R": "renamed",
    "C": "copied",
    "T": "type-changed",
}
FIELD = "\x1f"
RECORD = "\x1e"
PushOutcome = Literal["pushed", "up-to-date", "rejected"]


class GitError(RuntimeError):
    """A git command failed; the message is redacted and says which command and why."""


@dataclass(frozen=True)
class RevertAttempt:
    """The outcome of reverting one commit onto a branch tip, in a worktree."""

    sha: str | None
    diff: str
    conflict_files: list[str]
    already_reverted: bool


def truncate(text: str, limit: int = MAX_DIFF_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)\n"


def revert_message(commit: CommitInfo, note: str) -> str:
    """Git's own revert message (so `git log --grep` finds it), plus backout's note."""
    return f'Revert "{commit.subject}"\n\nThis reverts commit {commit.sha}.\n\n{note}\n'


class GitRepository:
    """One remote repository, mirrored into `cache_dir` and locked while used."""

    def __init__(
        self,
        remote_url: str,
        cache_dir: Path,
        redactor: Redactor,
        author: GitIdentity,
        username: str | None = None,
        token: SecretStr | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.remote_url = remote_url
        self.redactor = redactor
        self.author = author
        self.timeout_s = timeout_s
        self._username = username or "git"
        self._token = token
        if token is not None:
            redactor.add(token.get_secret_value(), username=self._username)
        parts = urlsplit(remote_url)
        slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{parts.hostname}-{parts.path}").strip("-")[-60:]
        digest = hashlib.sha256(remote_url.encode()).hexdigest()[:12]
        self.path = cache_dir.absolute() / f"{slug}-{digest}.git"

    # --- running git ------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.path.parent),
            "LC_ALL": "C",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_AUTHOR_NAME": self.author.name,
            "GIT_AUTHOR_EMAIL": self.author.email,
            "GIT_COMMITTER_NAME": self.author.name,
            "GIT_COMMITTER_EMAIL": self.author.email,
        }
        if self._token is not None:
            parts = urlsplit(self.remote_url)
            origin = f"{parts.scheme}://{parts.netloc}/"
            basic = base64.b64encode(f"{self._username}:{self._token.get_secret_value()}".encode()).decode()
            env.update(
                {
                    "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": f"http.{origin}.extraHeader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
                }
            )
        return env

    def _git(
        self, *args: str, cwd: Path | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = ["git", *args]
        try:
            completed = subprocess.run(
                command,
                cwd=cwd or self.path,
                env=self._env(),
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise GitError(self.redactor(f"git {args[0]} timed out after {self.timeout_s:.0f}s")) from None
        if check and completed.returncode != 0:
            raise GitError(
                self.redactor(
                    f"git {' '.join(args[:3])} failed ({completed.returncode}): "
                    f"{(completed.stderr or completed.stdout).strip()[-1500:]}"
                )
            )
        return completed

    @contextlib.contextmanager
    def locked(self) -> Iterator[GitRepository]:
        """Exclusive use of the cached clone (flock: also between threads of one process)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # --- reading ----------------------------------------------------------------------------

    def fetch(self) -> None:
        """Create the bare clone if needed and bring every branch up to date."""
        if not (self.path / "HEAD").exists():
            shutil.rmtree(self.path, ignore_errors=True)
            self.path.mkdir(parents=True)
            self._git("init", "--quiet", "--bare")
            self._git("remote", "add", "origin", self.remote_url)
        self._git("fetch", "--quiet", "--prune", "--no-tags", "origin", "+refs/heads/*:refs/remotes/origin/*")

    def default_branch(self) -> str:
        """The branch the remote's HEAD names (what Argo CD's `targetRevision: HEAD` tracks)."""
        listed = self._git("ls-remote", "--symref", "origin", "HEAD").stdout
        match = re.search(r"^ref: refs/heads/(\S+)\s+HEAD", listed, re.MULTILINE)
        if match is None:
            raise GitError(self.redactor(f"{self.remote_url}: the remote names no default branch"))
        return match.group(1)

    def branch_tip(self, branch: str) -> str | None:
        completed = self._git(
            "rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{branch}", check=False
        )
        return completed.stdout.strip() or None

    def resolve(self, revision: str) -> str:
        return self._git("rev-parse", "--verify", f"{revision}^{{commit}}").stdout.strip()

    def has_commit(self, sha: str) -> bool:
        return self._git("cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode == 0

    def commit(self, sha: str) -> CommitInfo:
        fields = FIELD.join(["%H", "%P", "%an", "%ae", "%aI", "%cI", "%s", "%b"])
        shown = self._git("show", "-s", f"--format={fields}", sha).stdout
        full, parents, name, email, authored, committed, subject, body = shown.split(FIELD, 7)
        listing = self._git(
            "diff-tree", "--no-commit-id", "--root", "-r", "-M", "--name-status", "-z", full
        ).stdout.split("\0")
        files: list[ChangedFile] = []
        index = 0
        while index < len(listing) and listing[index]:
            letter = listing[index][0]
            if letter in ("R", "C"):
                files.append(
                    ChangedFile(
                        path=listing[index + 2],
                        status=STATUS_LETTERS[letter],
                        previous_path=listing[index + 1],
                    )
                )
                index += 3
            else:
                files.append(
                    ChangedFile(path=listing[index + 1], status=STATUS_LETTERS.get(letter, "unknown"))
                )
                index += 2
        return CommitInfo(
            sha=full,
            parents=parents.split(),
            author_name=name,
            author_email=email,
            authored_at=datetime.fromisoformat(authored),
            committed_at=datetime.fromisoformat(committed),
            subject=subject,
            body=body.strip(),
            files=files,
        )

    def log(self, revision: str, paths: list[str], max_count: int = 500) -> list[str]:
        """Commits reachable from `revision` that touched `paths`, newest first."""
        spec = [path or "." for path in paths] or ["."]
        return self._git(
            "log", f"--max-count={max_count}", "--format=%H", revision, "--", *spec
        ).stdout.split()

    def show_file(self, revision: str, path: str) -> str | None:
        completed = self._git("show", f"{revision}:{path}", check=False)
        return completed.stdout if completed.returncode == 0 else None

    def list_files(self, revision: str, folder: str) -> list[str]:
        spec = [folder] if folder else []
        return self._git("ls-tree", "-r", "--name-only", revision, "--", *spec).stdout.splitlines()

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self._git("merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode == 0

    def diff(self, old: str, new: str, paths: list[str] | None = None) -> str:
        return truncate(self._git("diff", old, new, "--", *(paths or [])).stdout)

    def find_revert_of(self, culprit: str, revision: str) -> str | None:
        """A commit after `culprit` on `revision` whose message says it reverts `culprit`."""
        completed = self._git(
            "log",
            "--format=%H",
            "--fixed-strings",
            f"--grep=This reverts commit {culprit}.",
            f"{culprit}..{revision}",
            check=False,
        )
        found = completed.stdout.split()
        return found[0] if completed.returncode == 0 and found else None

    # --- writing ----------------------------------------------------------------------------

    def revert_onto(self, culprit: CommitInfo, base: str, note: str) -> RevertAttempt:
        """Revert `culprit` on top of commit `base` in a throwaway worktree; never leaves state behind."""
        worktree = Path(tempfile.mkdtemp(prefix="backout-revert-", dir=self.path.parent))
        shutil.rmtree(worktree)
        self._git("worktree", "add", "--quiet", "--detach", str(worktree), base)
        try:
            mainline = ["-m", "1"] if len(culprit.parents) > 1 else []
            reverted = self._git("revert", "--no-commit", *mainline, culprit.sha, cwd=worktree, check=False)
            conflicts = self._git("diff", "--name-only", "--diff-filter=U", cwd=worktree).stdout.split()
            if reverted.returncode != 0 and not conflicts:
                raise GitError(
                    self.redactor(f"git revert {culprit.short_sha} failed: {reverted.stderr.strip()[-1500:]}")
                )
            parent = culprit.parents[0] if culprit.parents else None
            intended = self.diff(culprit.sha, parent) if parent else ""
            if conflicts:
                self._git("revert", "--abort", cwd=worktree, check=False)
                return RevertAttempt(
                    sha=None, diff=intended, conflict_files=conflicts, already_reverted=False
                )
            staged = self._git("diff", "--cached", "--quiet", cwd=worktree, check=False)
            if staged.returncode == 0:
                return RevertAttempt(sha=None, diff="", conflict_files=[], already_reverted=True)
            self._git("commit", "--quiet", "--no-verify", "-m", revert_message(culprit, note), cwd=worktree)
            sha = self._git("rev-parse", "HEAD", cwd=worktree).stdout.strip()
            return RevertAttempt(
                sha=sha, diff=self.diff(base, sha), conflict_files=[], already_reverted=False
            )
        finally:
            self._git("worktree", "remove", "--force", str(worktree), check=False)
            shutil.rmtree(worktree, ignore_errors=True)
            self._git("worktree", "prune", check=False)

    def push(self, sha: str, branch: str) -> PushOutcome:
        """Push `sha` to `branch` without force: a concurrent push elsewhere is `rejected`."""
        completed = self._git("push", "--porcelain", "origin", f"{sha}:refs/heads/{branch}", check=False)
        output = completed.stdout + completed.stderr
        if completed.returncode == 0:
            return "up-to-date" if "[up to date]" in output else "pushed"
        if "[rejected]" in output or "non-fast-forward" in output or "fetch first" in output:
            return "rejected"
        raise GitError(
            self.redactor(f"git push to {branch} failed ({completed.returncode}): {output.strip()[-1500:]}")
        )
