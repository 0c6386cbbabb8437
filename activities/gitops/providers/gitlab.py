"""GitLab merge requests over the REST API v4 (gitlab.com or self-managed).

`POST /projects/:id/merge_requests` with `source_branch`, `target_branch`, `title`,
`description` (`:id` is the numeric id or the URL-encoded path); an open merge request for
the same source branch answers 409, and is then found with
`GET /projects/:id/merge_requests?source_branch=..&target_branch=..&state=opened`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from activities.gitops.providers.base import ChangeRequestProvider, ChangeRequestSpec
from config.gitops import GitLabConfig
from incidents.gitops import ChangeRequest

STATES = {"opened": "open", "locked": "open", "merged": "merged", "closed": "closed"}


class GitLabProvider(ChangeRequestProvider):
    name = "gitlab"

    def __init__(self, config: GitLabConfig, token: SecretStr, **kwargs: Any) -> None:
        self.project = quote(config.project, safe="")
        super().__init__(config.api_url, token, **kwargs)

    def auth_headers(self, token: SecretStr) -> dict[str, str]:
        return {"PRIVATE-TOKEN": token.get_secret_value()}

    def _requests(self) -> str:
        return f"/projects/{self.project}/merge_requests"

    def _to_model(self, data: dict[str, Any]) -> ChangeRequest:
        return ChangeRequest(
            provider="gitlab",
            number=int(data["iid"]),
            url=str(data.get("web_url", "")),
            state=STATES.get(str(data.get("state")), "open"),  # type: ignore[arg-type]
            head_branch=str(data.get("source_branch", "")),
            base_branch=str(data.get("target_branch", "")),
        )

    def open(self, spec: ChangeRequestSpec) -> ChangeRequest:
        payload = {
            "source_branch": spec.head_branch,
            "target_branch": spec.base_branch,
            "title": spec.title,
            "description": spec.body,
            "remove_source_branch": True,
        }
        response = self.request("POST", self._requests(), json=payload)
        if response.status_code == 201:
            return self._to_model(response.json())
        if response.status_code == 409:
            listed = self.request(
                "GET",
                self._requests(),
                params={
                    "source_branch": spec.head_branch,
                    "target_branch": spec.base_branch,
                    "state": "opened",
                },
            )
            if listed.status_code == 200 and listed.json():
                return self._to_model(listed.json()[0])
        raise self.failure(response, f"opening a merge request {spec.head_branch} -> {spec.base_branch}")

    def get(self, number: int) -> ChangeRequest:
        response = self.request("GET", f"{self._requests()}/{number}")
        if response.status_code != 200:
            raise self.failure(response, f"reading merge request !{number}")
        return self._to_model(response.json())
