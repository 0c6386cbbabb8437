"""The one place that maps a provider config to its implementation."""

from __future__ import annotations

from pydantic import SecretStr

from activities.gitops.providers.base import ChangeRequestProvider
from activities.gitops.providers.github import GitHubProvider
from activities.gitops.providers.gitlab import GitLabProvider
from activities.gitops.secrets import Redactor
from config.gitops import GitHubConfig, ProviderConfig


def make_provider(
    config: ProviderConfig, token: SecretStr, redactor: Redactor, timeout_s: float = 30.0
) -> ChangeRequestProvider:
    if isinstance(config, GitHubConfig):
        return GitHubProvider(config, token, redactor=redactor, timeout_s=timeout_s)
    return GitLabProvider(config, token, redactor=redactor, timeout_s=timeout_s)
