"""GitHub pull requests over the REST API (github.com or GitHub Enterprise Server).

`POST /repos/{owner}/{repo}/pulls` with `title`, `head`, `base`, `body`; an open pull request
for the same head answers 422 ("A pull request already exists"), and is then found with
`GET /repos/{owner}/{repo}/pulls?head=<owner>:<branch>&base=<base>&state=open`.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from activities.gitops.providers.base import ChangeRequestProvider, ChangeRequestSpec
from config.gitops import GitHubConfig
from incidents.gitops import ChangeRequest

API_VERSION = "2022-11-28"


class GitHubProvider(ChangeRequestProvider):
    name = "github"

    def __init__(self, config: GitHubConfig, token: SecretStr, **kwargs: Any) -> None:
        self.owner, self.repo = config.repository.split("/", 1)
        super().__init__(config.api_url, token, **kwargs)

    def auth_headers(self, token: SecretStr) -> dict[str, str]:
        return {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token.get_secret_value()}",
            "X-GitHub-Api-Version": API_VERSION,
        }

    def _pulls(self) -> str:
        return f"/repos/{self.owner}/{self.repo}/pulls"

    def _to_model(self, data: dict[str, Any]) -> ChangeRequest:
        state = "merged" if data.get("merged") or data.get("merged_at") else str(data.get("state", "open"))
        return ChangeRequest(
            provider="github",
            number=int(data["number"]),
            url=str(data.get("html_url", "")),
            state=state if state in ("open", "merged", "closed") else "open",  # type: ignore[arg-type]
            head_branch=str((data.get("head") or {}).get("ref", "")),
            base_branch=str((data.get("base") or {}).get("ref", "")),
        )

    def open(self, spec: ChangeRequestSpec) -> ChangeRequest:
        payload = {
            "title": spec.title,
            "head": spec.head_branch,
            "base": spec.base_branch,
            "body": spec.body,
            "maintainer_can_modify": True,
        }
        response = self.request("POST", self._pulls(), json=payload)
        if response.status_code == 201:
            return self._to_model(response.json())
        if response.status_code == 422 and "already exists" in response.text:
            listed = self.request(
                "GET",
                self._pulls(),
                params={
                    "head": f"{self.owner}:{spec.head_branch}",
                    "base": spec.base_branch,
                    "state": "open",
                },
            )
            if listed.status_code == 200 and listed.json():
                return self._to_model(listed.json()[0])
        raise self.failure(response, f"opening a pull request {spec.head_branch} -> {spec.base_branch}")

    def get(self, number: int) -> ChangeRequest:
        response = self.request("GET", f"{self._pulls()}/{number}")
        if response.status_code != 200:
            raise self.failure(response, f"reading pull request #{number}")
        return self._to_model(response.json())
