"""The one place that maps a provider config to its implementation."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr

from activities.gitops.providers.base import ChangeRequestProvider
from activities.gitops.providers.github import GitHubConfig, GitHubProvider
from activities.gitops.providers.gitlab import GitLabConfig, GitLabProvider
from activities.gitops.secrets import Redactor

ProviderConfig = Annotated[GitHubConfig | GitLabConfig, Field(discriminator="type")]


def make_provider(
    config: ProviderConfig, token: SecretStr, redactor: Redactor, timeout_s: float = 30.0
) -> ChangeRequestProvider:
    if isinstance(config, GitHubConfig):
        return GitHubProvider(config, token, redactor=redactor, timeout_s=timeout_s)
    return GitLabProvider(config, token, redactor=redactor, timeout_s=timeout_s)
