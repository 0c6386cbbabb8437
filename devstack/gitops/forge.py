"""A local GitHub and GitLab REST API for pull/merge requests, backed by real bare repositories.

It answers the documented endpoints backout uses, checks each request against the
documented shape (authentication header, API version header, required fields and their
types, branches that exist, the URL-encoded GitLab project path), answers the documented
errors (GitHub 401/422, GitLab 400/401/404/409) and records every request. `merge()` plays
the human who merges: a real `git merge` (or squash) in the bare repository, so backout's
"did the revert land" check reads real history.

GitHub: POST/GET /repos/{owner}/{repo}/pulls, GET /repos/{owner}/{repo}/pulls/{number}
GitLab: POST/GET /api/v4/projects/{id}/merge_requests, GET .../merge_requests/{iid}
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from devstack.receivers.server import ReceiverServer

GITHUB_API_VERSION = "2022-11-28"
GITHUB_MEDIA_TYPE = "application/vnd.github+json"
GITHUB_FIELDS: dict[str, type | tuple[type, ...]] = {
    "title": str,
    "head": str,
    "base": str,
    "body": str,
    "maintainer_can_modify": bool,
    "draft": bool,
    "head_repo": str,
    "issue": int,
}
GITLAB_FIELDS: dict[str, type | tuple[type, ...]] = {
    "source_branch": str,
    "target_branch": str,
    "title": str,
    "description": str,
    "remove_source_branch": bool,
    "squash": bool,
    "labels": (str, list),
    "assignee_ids": list,
    "target_project_id": int,
}


@dataclass
class RecordedCall:
    provider: Literal["github", "gitlab"]
    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class ChangeRequestRecord:
    provider: Literal["github", "gitlab"]
    repository: str
    number: int
    title: str
    body: str
    head: str
    base: str
    state: Literal["open", "closed", "merged"] = "open"
    merge_sha: str | None = None


@dataclass
class _Forge:
    repositories: dict[str, Path]
    token: str
    calls: list[RecordedCall] = field(default_factory=list)
    requests: list[ChangeRequestRecord] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _git(repository: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repository), *args], capture_output=True, text=True)


def branch_sha(repository: Path, branch: str) -> str | None:
    completed = _git(repository, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
    return completed.stdout.strip() or None


def _type_errors(payload: dict[str, Any], fields: dict[str, type | tuple[type, ...]]) -> list[str]:
    errors = []
    for name, expected in fields.items():
        if name in payload and payload[name] is not None:
            value = payload[name]
            # bool is an int in Python, and a JSON number is not a boolean.
            if (isinstance(value, bool) and expected is int) or not isinstance(value, expected):
                errors.append(name)
    return errors


class ForgeRecorder:
    """The local GitHub + GitLab API; `repositories` maps `owner/name` (GitHub) and project
    paths or numeric ids (GitLab) to bare repositories."""

    def __init__(self, repositories: dict[str, Path], token: str) -> None:
        self._state = _Forge(repositories=dict(repositories), token=token)
        # Like a careless proxy: 401 answers quote the credentials they were sent (redaction tests).
        self.echo_credentials_on_401 = False
        self.app = FastAPI()
        self._routes()
        self._server = ReceiverServer(self.app)
        self.url = self._server.url

    @property
    def github_api_url(self) -> str:
        return self.url

    @property
    def gitlab_api_url(self) -> str:
        return f"{self.url}/api/v4"

    def add_repository(self, name: str, path: Path) -> None:
        with self._state.lock:
            self._state.repositories[name] = path

    def start(self) -> ForgeRecorder:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> ForgeRecorder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def calls(self) -> list[RecordedCall]:
        with self._state.lock:
            return list(self._state.calls)

    @property
    def change_requests(self) -> list[ChangeRequestRecord]:
        with self._state.lock:
            return list(self._state.requests)

    # --- playing the human -------------------------------------------------------------------

    def merge(
        self, provider: Literal["github", "gitlab"], number: int, method: Literal["merge", "squash"] = "merge"
    ) -> str:
        """Merge an open request for real in its bare repository; returns the new base tip."""
        with self._state.lock:
            record = next(r for r in self._state.requests if r.provider == provider and r.number == number)
            repository = self._state.repositories[record.repository]
        if record.state != "open":
            raise ValueError(f"{provider} request {number} is {record.state}")
        with tempfile.TemporaryDirectory(prefix="forge-merge-") as work:
            env_args = ["-c", "user.name=Forge Merger", "-c", "user.email=merger@forge.local"]
            steps = [
                ["git", "clone", "--quiet", "--branch", record.base, str(repository), work],
                ["git", "-C", work, "fetch", "--quiet", "origin", record.head],
            ]
            if method == "squash":
                steps += [
                    ["git", "-C", work, "merge", "--squash", "FETCH_HEAD"],
                    ["git", "-C", work, *env_args, "commit", "--quiet", "-m", f"{record.title} (#{number})"],
                ]
            else:
                steps.append(
                    [
                        "git",
                        "-C",
                        work,
                        *env_args,
                        "merge",
                        "--no-ff",
                        "--quiet",
                        "-m",
                        f"Merge request #{number}",
                        "FETCH_HEAD",
                    ]
                )
            steps.append(["git", "-C", work, "push", "--quiet", "origin", f"HEAD:{record.base}"])
            for step in steps:
                completed = subprocess.run(step, capture_output=True, text=True)
                if completed.returncode != 0:
                    raise RuntimeError(f"{' '.join(step[:4])} failed: {completed.stderr.strip()}")
        sha = branch_sha(repository, record.base) or ""
        with self._state.lock:
            record.state = "merged"
            record.merge_sha = sha
        return sha

    # --- the API --------------------------------------------------------------------------

    def _record(
        self, provider: Literal["github", "gitlab"], request: Request, status: int, body: Any
    ) -> None:
        headers = {key.lower(): value for key, value in request.headers.items()}
        with self._state.lock:
            self._state.calls.append(
                RecordedCall(provider, request.method, request.url.path, status, headers, body)
            )

    def _github_pull(self, record: ChangeRequestRecord) -> dict[str, Any]:
        repository = self._state.repositories[record.repository]
        owner = record.repository.split("/")[0]
        return {
            "id": 1000 + record.number,
            "number": record.number,
            "state": "closed" if record.state != "open" else "open",
            "merged": record.state == "merged",
            "merged_at": "2026-12-01T00:00:00Z" if record.state == "merged" else None,
            "merge_commit_sha": record.merge_sha,
            "title": record.title,
            "body": record.body,
            "html_url": f"{self.url}/{record.repository}/pull/{record.number}",
            "url": f"{self.url}/repos/{record.repository}/pulls/{record.number}",
            "head": {
                "ref": record.head,
                "label": f"{owner}:{record.head}",
                "sha": branch_sha(repository, record.head),
            },
            "base": {
                "ref": record.base,
                "label": f"{owner}:{record.base}",
                "sha": branch_sha(repository, record.base),
            },
            "user": {"login": "backout-bot"},
        }

    def _gitlab_request(self, record: ChangeRequestRecord) -> dict[str, Any]:
        repository = self._state.repositories[record.repository]
        return {
            "id": 2000 + record.number,
            "iid": record.number,
            "project_id": 1,
            "title": record.title,
            "description": record.body,
            "state": {"open": "opened"}.get(record.state, record.state),
            "source_branch": record.head,
            "target_branch": record.base,
            "sha": branch_sha(repository, record.head),
            "merge_commit_sha": record.merge_sha,
            "web_url": f"{self.url}/{record.repository}/-/merge_requests/{record.number}",
        }

    def _github_denied(self, request: Request) -> tuple[int, dict[str, Any]] | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or token != self._state.token:
            echoed = (
                f" (got Authorization: {request.headers.get('authorization')})"
                if self.echo_credentials_on_401
                else ""
            )
            return 401, {"message": f"Bad credentials{echoed}", "status": "401"}
        if request.headers.get("x-github-api-version", GITHUB_API_VERSION) != GITHUB_API_VERSION:
            return 400, {"message": "Unsupported API version"}
        if GITHUB_MEDIA_TYPE not in request.headers.get("accept", ""):
            return 415, {"message": f"send Accept: {GITHUB_MEDIA_TYPE}"}
        return None

    def _gitlab_denied(self, request: Request) -> tuple[int, dict[str, Any]] | None:
        token = request.headers.get("private-token")
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        if token != self._state.token and not (scheme.lower() == "bearer" and bearer == self._state.token):
            echoed = f" (got PRIVATE-TOKEN: {token})" if self.echo_credentials_on_401 else ""
            return 401, {"message": f"401 Unauthorized{echoed}"}
        return None

    def _respond(
        self, provider: Literal["github", "gitlab"], request: Request, body: Any, content: Any, status: int
    ) -> JSONResponse:
        self._record(provider, request, status, body)
        return JSONResponse(content, status_code=status)

    def _routes(self) -> None:
        app = self.app

        @app.post("/repos/{owner}/{repo}/pulls")
        async def github_open(owner: str, repo: str, request: Request) -> JSONResponse:
            raw = await request.body()
            try:
                payload = await request.json()
            except ValueError:
                return self._respond(
                    "github", request, raw.decode(errors="replace"), {"message": "Problems parsing JSON"}, 400
                )
            denied = self._github_denied(request)
            if denied is not None:
                return self._respond("github", request, payload, denied[1], denied[0])
            name = f"{owner}/{repo}"
            repository = self._state.repositories.get(name)
            if repository is None:
                return self._respond("github", request, payload, {"message": "Not Found"}, 404)
            if not isinstance(payload, dict):
                return self._respond("github", request, payload, {"message": "Problems parsing JSON"}, 400)
            errors = [
                {"resource": "PullRequest", "field": field_name, "code": "missing_field"}
                for field_name in ("head", "base")
                if field_name not in payload
            ]
            if "title" not in payload and "issue" not in payload:
                errors.append({"resource": "PullRequest", "field": "title", "code": "missing_field"})
            errors += [
                {"resource": "PullRequest", "field": f, "code": "invalid"}
                for f in _type_errors(payload, GITHUB_FIELDS)
            ]
            if not errors:
                head = str(payload["head"]).split(":", 1)[-1]
                for field_name, branch in (("head", head), ("base", payload["base"])):
                    if branch_sha(repository, branch) is None:
                        errors.append({"resource": "PullRequest", "field": field_name, "code": "invalid"})
            if errors:
                return self._respond(
                    "github", request, payload, {"message": "Validation Failed", "errors": errors}, 422
                )
            with self._state.lock:
                existing = next(
                    (
                        r
                        for r in self._state.requests
                        if r.provider == "github"
                        and r.repository == name
                        and r.head == head
                        and r.state == "open"
                    ),
                    None,
                )
            if existing is not None:
                message = f"A pull request already exists for {owner}:{head}."
                error = {"resource": "PullRequest", "code": "custom", "message": message}
                return self._respond(
                    "github", request, payload, {"message": "Validation Failed", "errors": [error]}, 422
                )
            if _git(repository, "rev-list", "--count", f"{payload['base']}..{head}").stdout.strip() == "0":
                error = {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"No commits between {payload['base']} and {head}",
                }
                return self._respond(
                    "github", request, payload, {"message": "Validation Failed", "errors": [error]}, 422
                )
            with self._state.lock:
                record = ChangeRequestRecord(
                    "github",
                    name,
                    len(self._state.requests) + 1,
                    str(payload.get("title", "")),
                    str(payload.get("body") or ""),
                    head,
                    str(payload["base"]),
                )
                self._state.requests.append(record)
            return self._respond("github", request, payload, self._github_pull(record), 201)

        @app.get("/repos/{owner}/{repo}/pulls")
        async def github_list(owner: str, repo: str, request: Request) -> JSONResponse:
            denied = self._github_denied(request)
            if denied is not None:
                return self._respond("github", request, None, denied[1], denied[0])
            params = request.query_params
            head = params.get("head", "").split(":", 1)[-1]
            state = params.get("state", "open")
            with self._state.lock:
                found = [
                    self._github_pull(r)
                    for r in self._state.requests
                    if r.provider == "github"
                    and r.repository == f"{owner}/{repo}"
                    and (not head or r.head == head)
                    and (not params.get("base") or r.base == params["base"])
                    and (state == "all" or (state == "open") == (r.state == "open"))
                ]
            return self._respond("github", request, None, found, 200)

        @app.get("/repos/{owner}/{repo}/pulls/{number}")
        async def github_get(owner: str, repo: str, number: int, request: Request) -> JSONResponse:
            denied = self._github_denied(request)
            if denied is not None:
                return self._respond("github", request, None, denied[1], denied[0])
            with self._state.lock:
                record = next(
                    (
                        r
                        for r in self._state.requests
                        if r.provider == "github" and r.repository == f"{owner}/{repo}" and r.number == number
                    ),
                    None,
                )
                content = self._github_pull(record) if record else {"message": "Not Found"}
            return self._respond("github", request, None, content, 200 if record else 404)

        def gitlab_project(project_id: str, request: Request) -> str | None:
            """The project a request names; a path id must arrive URL-encoded (group%2Fproject)."""
            raw_path = request.scope.get("raw_path", b"").decode()
            if "/" in project_id and "%2F" not in raw_path.upper():
                return None
            name = unquote(project_id)
            return name if name in self._state.repositories else None

        @app.post("/api/v4/projects/{project_id:path}/merge_requests")
        async def gitlab_open(project_id: str, request: Request) -> JSONResponse:
            try:
                payload = await request.json()
            except ValueError:
                return self._respond("gitlab", request, None, {"error": "body is not JSON"}, 400)
            denied = self._gitlab_denied(request)
            if denied is not None:
                return self._respond("gitlab", request, payload, denied[1], denied[0])
            name = gitlab_project(project_id, request)
            if name is None:
                return self._respond("gitlab", request, payload, {"message": "404 Project Not Found"}, 404)
            if not isinstance(payload, dict):
                return self._respond("gitlab", request, payload, {"error": "body must be a JSON object"}, 400)
            absent = [f for f in ("source_branch", "target_branch", "title") if not payload.get(f)]
            invalid = _type_errors(payload, GITLAB_FIELDS)
            if absent or invalid:
                parts = [f"{f} is missing" for f in absent] + [f"{f} is invalid" for f in invalid]
                return self._respond("gitlab", request, payload, {"error": ", ".join(parts)}, 400)
            repository = self._state.repositories[name]
            for branch in (payload["source_branch"], payload["target_branch"]):
                if branch_sha(repository, branch) is None:
                    return self._respond(
                        "gitlab", request, payload, {"message": f"Branch {branch} does not exist"}, 400
                    )
            with self._state.lock:
                existing = next(
                    (
                        r
                        for r in self._state.requests
                        if r.provider == "gitlab"
                        and r.repository == name
                        and r.head == payload["source_branch"]
                        and r.state == "open"
                    ),
                    None,
                )
            if existing is not None:
                message = [
                    f"Another open merge request already exists for this source branch: !{existing.number}"
                ]
                return self._respond("gitlab", request, payload, {"message": message}, 409)
            with self._state.lock:
                record = ChangeRequestRecord(
                    "gitlab",
                    name,
                    len(self._state.requests) + 1,
                    payload["title"],
                    str(payload.get("description") or ""),
                    payload["source_branch"],
                    payload["target_branch"],
                )
                self._state.requests.append(record)
            return self._respond("gitlab", request, payload, self._gitlab_request(record), 201)

        @app.get("/api/v4/projects/{project_id:path}/merge_requests/{iid}")
        async def gitlab_get(project_id: str, iid: int, request: Request) -> JSONResponse:
            denied = self._gitlab_denied(request)
            if denied is not None:
                return self._respond("gitlab", request, None, denied[1], denied[0])
            name = gitlab_project(project_id, request)
            with self._state.lock:
                record = next(
                    (
                        r
                        for r in self._state.requests
                        if r.provider == "gitlab" and r.repository == name and r.number == iid
                    ),
                    None,
                )
                content = self._gitlab_request(record) if record else {"message": "404 Not found"}
            return self._respond("gitlab", request, None, content, 200 if record else 404)

        @app.get("/api/v4/projects/{project_id:path}/merge_requests")
        async def gitlab_list(project_id: str, request: Request) -> JSONResponse:
            denied = self._gitlab_denied(request)
            if denied is not None:
                return self._respond("gitlab", request, None, denied[1], denied[0])
            name = gitlab_project(project_id, request)
            params = request.query_params
            state = params.get("state", "all")
            with self._state.lock:
                found = [
                    self._gitlab_request(r)
                    for r in self._state.requests
                    if r.provider == "gitlab"
                    and r.repository == name
                    and (not params.get("source_branch") or r.head == params["source_branch"])
                    and (not params.get("target_branch") or r.base == params["target_branch"])
                    and (state == "all" or {"opened": "open"}.get(state, state) == r.state)
                ]
            return self._respond("gitlab", request, None, found, 200)
