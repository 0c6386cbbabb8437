"""GitOps configuration: where the Git repositories are, how to reach and push to them, and
which provider opens pull/merge requests for each. Tokens are `Credential`s (inline or a
Secret key), never plain strings."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from activities.gitops.providers.factory import ProviderConfig
from activities.gitops.secrets import GitCredentials


def normalize_repo_url(url: str) -> str:
    """Comparable form of a Git URL: no credentials, no trailing `.git` or `/`, lower-case host."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return url.strip().removesuffix("/").removesuffix(".git")
    host = parts.hostname.lower() if parts.hostname else ""
    port = f":{parts.port}" if parts.port else ""
    path = parts.path.rstrip("/").removesuffix(".git")
    return f"{parts.scheme.lower()}://{host}{port}{path}"


class UnsupportedRepository(ValueError):
    """A repository backout cannot reach as configured; the message says what to configure."""


class GitIdentity(BaseModel):
    name: str = "backout"
    email: str = "backout@localhost"


class RepositoryConfig(BaseModel):
    """One Git repository a reconciler reads, as the reconciler names it."""

    url: str = Field(description="the URL in the GitRepository / Application (the match key)")
    clone_url: str | None = Field(default=None, description="where backout reaches it, if not at `url`")
    credentials: GitCredentials | None = None
    provider: ProviderConfig | None = None

    @field_validator("url", "clone_url")
    @classmethod
    def _http_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r}: backout speaks Git over HTTP(S); give an http(s):// URL")
        if value is not None and urlsplit(value).username:
            raise ValueError("put credentials in `credentials`, not in the URL")
        return value

    @property
    def remote_url(self) -> str:
        return self.clone_url or self.url


class GitOpsConfig(BaseModel):
    cache_dir: Path = Path(".backout/gitops")
    author: GitIdentity = Field(default_factory=GitIdentity)
    branch_prefix: str = "backout/revert-"
    repositories: list[RepositoryConfig] = Field(default_factory=list)
    argocd_namespaces: list[str] = Field(default_factory=lambda: ["argocd"])
    git_timeout_s: float = Field(default=120.0, gt=0)
    push_attempts: int = Field(default=3, ge=1, description="direct pushes retried after a concurrent push")

    def repository(self, url: str) -> RepositoryConfig:
        """The configured repository for `url`, or an anonymous one reached at `url` itself."""
        wanted = normalize_repo_url(url)
        for repository in self.repositories:
            if normalize_repo_url(repository.url) == wanted:
                return repository
        if not url.startswith(("http://", "https://")) or urlsplit(url).username:
            raise UnsupportedRepository(
                f"repository {normalize_repo_url(url)!r} is not configured and not a plain http(s) URL: "
                "add it to gitops.repositories with a clone_url backout can reach"
            )
        return RepositoryConfig(url=url)
