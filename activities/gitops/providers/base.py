"""The one interface every pull/merge request provider implements, and its shared HTTP plumbing."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import httpx
from pydantic import BaseModel, SecretStr

from activities.gitops.secrets import Redactor
from incidents.gitops import ChangeRequest


class ChangeRequestSpec(BaseModel):
    """What to ask for: merge `head_branch` into `base_branch`."""

    title: str
    body: str
    head_branch: str
    base_branch: str


class ProviderError(RuntimeError):
    """The provider refused or failed; redacted, with the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class ChangeRequestProvider(ABC):
    """Opens and reads pull/merge requests on one repository."""

    name: str

    def __init__(self, base_url: str, token: SecretStr, redactor: Redactor, timeout_s: float = 30.0) -> None:
        self.redactor = redactor
        redactor.add(token.get_secret_value())
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=self.auth_headers(token) | {"User-Agent": "backout"},
            timeout=timeout_s,
            trust_env=False,
        )

    @abstractmethod
    def auth_headers(self, token: SecretStr) -> dict[str, str]: ...

    @abstractmethod
    def open(self, spec: ChangeRequestSpec) -> ChangeRequest:
        """Open the request; an existing open one for the same branches is returned instead."""

    @abstractmethod
    def get(self, number: int) -> ChangeRequest: ...

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ProviderError(
                self.redactor(f"{self.name} {method} {path}: {type(exc).__name__}: {exc}"), retryable=True
            ) from None

    def failure(self, response: httpx.Response, doing: str) -> ProviderError:
        try:
            detail: Any = response.json()
        except ValueError:
            detail = response.text[:500]
        retryable = response.status_code == 429 or response.status_code >= 500
        return ProviderError(
            self.redactor(f"{self.name}: {doing} failed: HTTP {response.status_code}: {detail}"),
            status=response.status_code,
            retryable=retryable,
        )
