"""GitOps settings: where the Git repositories are, how to reach and push to them, and which
provider opens pull/merge requests for each (the `gitops` section of the settings).

Tokens are `Credential`s, given inline (a SecretStr, masked by `backout config show`) or as a
reference to a Kubernetes Secret key, read when a Git or provider call needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator


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


# --- credentials ------------------------------------------------------------------------------


class SecretKeyRef(BaseModel):
    """One key of a Kubernetes Secret."""

    namespace: str
    name: str
    key: str


class Credential(BaseModel):
    """A token given inline or read from a Secret; exactly one of the two."""

    value: SecretStr | None = None
    secret_ref: SecretKeyRef | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Credential:
        if (self.value is None) == (self.secret_ref is None):
            raise ValueError("give exactly one of `value` or `secret_ref`")
        return self


class GitCredentials(BaseModel):
    """HTTP Basic credentials for a Git remote: GitHub takes any username with a token,
    GitLab `oauth2`, a self-hosted server the account name."""

    username: str = Field(default="git", min_length=1)
    token: Credential


# --- pull/merge request providers ---------------------------------------------------------------


class GitHubConfig(BaseModel):
    type: Literal["github"] = "github"
    api_url: str = Field(default="https://api.github.com", description="GHES: https://HOST/api/v3")
    repository: str = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="owner/name")
    token: Credential


class GitLabConfig(BaseModel):
    type: Literal["gitlab"] = "gitlab"
    api_url: str = Field(default="https://gitlab.com/api/v4")
    project: str = Field(min_length=1, description="numeric id or path, e.g. group/sub/project")
    token: Credential


ProviderConfig = Annotated[GitHubConfig | GitLabConfig, Field(discriminator="type")]


# --- repositories -------------------------------------------------------------------------------


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
    """The `gitops` settings section (BACKOUT_GITOPS as JSON, or `gitops:` in the config file)."""

    enabled: bool = Field(
        default=True,
        description="recognise Flux/Argo CD-managed objects in the change ledger and roll them back "
        "with the GitOps handshake (suspend, roll back, revert in Git, resume)",
    )
    cache_dir: Path = Field(
        default=Path(".backout/gitops"), description="bare clones (default: <state_dir>/gitops)"
    )
    author: GitIdentity = Field(default_factory=GitIdentity)
    branch_prefix: str = "backout/revert-"
    repositories: list[RepositoryConfig] = Field(default_factory=list)
    argocd_namespaces: list[str] = Field(default_factory=lambda: ["argocd"])
    git_timeout_s: float = Field(default=120.0, gt=0)
    push_attempts: int = Field(default=3, ge=1, description="direct pushes retried after a concurrent push")
    reconcile_timeout_s: float = Field(
        default=300.0, gt=0, description="after resuming, how long the reconciler has to apply the revert"
    )

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
