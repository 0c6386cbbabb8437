"""A fleet repository: a bare repository served by the local Git server, and a developer's working
clone that commits (as a given author) and pushes to it. The tests and `backout demo --gitops` write
their desired state through it, as a team writes to the repository its reconciler follows."""

from __future__ import annotations

import subprocess
from pathlib import Path

from devstack.gitops.git_server import GitHttpServer

Author = tuple[str, str]
DEVELOPER: Author = ("Dana Developer", "dana@example.com")


class Fleet:
    """A served bare repository and a developer's working clone of it (branch `main`)."""

    def __init__(self, server: GitHttpServer, name: str, workdir: Path) -> None:
        self.name = name
        self.bare = server.create_repository(name)
        self.url = server.url(name)
        workdir = workdir.absolute()  # git runs it from its parent directory
        self.workdir = workdir
        workdir.parent.mkdir(parents=True, exist_ok=True)
        self._git("init", "--quiet", "--initial-branch=main", str(workdir), cwd=workdir.parent)
        self._git("remote", "add", "origin", str(self.bare))

    def _git(self, *args: str, cwd: Path | None = None, author: Author = DEVELOPER) -> str:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.workdir.parent),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": author[0],
            "GIT_AUTHOR_EMAIL": author[1],
            "GIT_COMMITTER_NAME": author[0],
            "GIT_COMMITTER_EMAIL": author[1],
        }
        completed = subprocess.run(
            ["git", *args], cwd=cwd or self.workdir, env=env, capture_output=True, text=True
        )
        if completed.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)}: {completed.stderr.strip()}")
        return completed.stdout.strip()

    def commit(self, files: dict[str, str], message: str, author: Author = DEVELOPER) -> str:
        """Write `files`, commit them as `author` and push to main; returns the commit SHA."""
        if self.head():
            self._git("pull", "--quiet", "--rebase", "origin", "main", author=author)
        for relative, content in files.items():
            path = self.workdir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            self._git("add", relative)
        self._git("commit", "--quiet", "-m", message, author=author)
        self._git("push", "--quiet", "origin", "HEAD:main")
        return self.head()

    def head(self) -> str:
        completed = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
            cwd=self.workdir,
            capture_output=True,
            text=True,
        )
        return completed.stdout.strip()

    def remote_head(self) -> str:
        return subprocess.run(
            ["git", "-C", str(self.bare), "rev-parse", "refs/heads/main"], capture_output=True, text=True
        ).stdout.strip()

    def log(self, limit: int = 20) -> list[str]:
        """Subjects on the served main branch, newest first."""
        return subprocess.run(
            ["git", "-C", str(self.bare), "log", f"--max-count={limit}", "--format=%s", "main"],
            capture_output=True,
            text=True,
        ).stdout.splitlines()
