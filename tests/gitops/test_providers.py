"""Pull/merge request providers against the local GitHub/GitLab API, which checks the
documented request shapes; and the recorder itself refusing what the real APIs refuse."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from activities.gitops.providers.base import ChangeRequestSpec, ProviderError
from activities.gitops.providers.factory import make_provider
from activities.gitops.secrets import Redactor
from config.gitops import Credential, GitHubConfig, GitLabConfig
from devstack.gitops.forge import ForgeRecorder
from incidents.gitops import ChangeRequest
from tests.gitops.conftest import FORGE_TOKEN, Fleet, configmap_manifest


def revert_branch(fleet: Fleet) -> str:
    fleet.commit({"apps/a.yaml": configmap_manifest("a", "ns", {"k": "v"})}, "base")
    fleet._git("checkout", "--quiet", "-b", "backout/revert-1")
    fleet._git("rm", "--quiet", "apps/a.yaml")
    fleet._git("commit", "--quiet", "-m", "Revert base")
    fleet._git("push", "--quiet", "origin", "backout/revert-1")
    fleet._git("checkout", "--quiet", "main")
    return "backout/revert-1"


SPEC = ChangeRequestSpec(title="Revert base", body="why", head_branch="backout/revert-1", base_branch="main")


def test_github_pull_request_opened_with_the_documented_request(
    forge_session: ForgeRecorder, fleet: Fleet
) -> None:
    revert_branch(fleet)
    name = f"acme/{fleet.name}"
    forge_session.add_repository(name, fleet.bare)
    config = GitHubConfig(
        api_url=forge_session.github_api_url, repository=name, token=Credential(value=SecretStr(FORGE_TOKEN))
    )
    provider = make_provider(config, SecretStr(FORGE_TOKEN), Redactor())
    opened = provider.open(SPEC)
    assert opened == ChangeRequest(
        provider="github",
        number=opened.number,
        url=f"{forge_session.url}/{name}/pull/{opened.number}",
        state="open",
        head_branch="backout/revert-1",
        base_branch="main",
    )
    call = next(c for c in forge_session.calls if c.method == "POST" and c.path == f"/repos/{name}/pulls")
    assert call.status == 201
    assert call.headers["authorization"] == f"Bearer {FORGE_TOKEN}"
    assert call.headers["accept"] == "application/vnd.github+json"
    assert call.headers["x-github-api-version"] == "2022-11-28"
    assert call.body == {
        "title": "Revert base",
        "head": "backout/revert-1",
        "base": "main",
        "body": "why",
        "maintainer_can_modify": True,
    }
    # Opening again (a retried activity) finds the open one instead of failing.
    assert provider.open(SPEC).number == opened.number
    forge_session.merge("github", opened.number)
    assert provider.get(opened.number).state == "merged"
    provider.close()


def test_gitlab_merge_request_uses_the_encoded_project_path(
    forge_session: ForgeRecorder, fleet: Fleet
) -> None:
    revert_branch(fleet)
    project = f"platform/fleets/{fleet.name}"
    forge_session.add_repository(project, fleet.bare)
    config = GitLabConfig(
        api_url=forge_session.gitlab_api_url, project=project, token=Credential(value=SecretStr(FORGE_TOKEN))
    )
    provider = make_provider(config, SecretStr(FORGE_TOKEN), Redactor())
    opened = provider.open(SPEC)
    assert opened.provider == "gitlab" and opened.state == "open" and opened.head_branch == "backout/revert-1"
    call = next(
        c
        for c in forge_session.calls
        if c.method == "POST" and c.provider == "gitlab" and c.status == 201 and fleet.name in c.path
    )
    assert call.headers["private-token"] == FORGE_TOKEN
    assert call.body == {
        "source_branch": "backout/revert-1",
        "target_branch": "main",
        "title": "Revert base",
        "description": "why",
        "remove_source_branch": True,
    }
    assert provider.open(SPEC).number == opened.number  # 409 -> the open one
    assert any(c.status == 409 for c in forge_session.calls if c.provider == "gitlab")
    forge_session.merge("gitlab", opened.number, method="squash")
    assert provider.get(opened.number).state == "merged"
    provider.close()


def test_a_rejected_token_is_an_error_that_does_not_carry_it(
    forge_session: ForgeRecorder, fleet: Fleet
) -> None:
    revert_branch(fleet)
    forge_session.add_repository(f"acme/{fleet.name}", fleet.bare)
    wrong = "ghp_wrongwrongwrong0123456789"
    config = GitHubConfig(
        api_url=forge_session.github_api_url,
        repository=f"acme/{fleet.name}",
        token=Credential(value=SecretStr(wrong)),
    )
    provider = make_provider(config, SecretStr(wrong), Redactor())
    with pytest.raises(ProviderError) as raised:
        provider.open(SPEC)
    assert raised.value.status == 401 and not raised.value.retryable
    assert wrong not in str(raised.value) and "Bad credentials" in str(raised.value)


def test_the_recorder_refuses_what_the_real_apis_refuse(forge_session: ForgeRecorder, fleet: Fleet) -> None:
    revert_branch(fleet)
    name = f"acme/{fleet.name}"
    forge_session.add_repository(name, fleet.bare)
    forge_session.add_repository(f"group/{fleet.name}", fleet.bare)
    github = {"Authorization": f"Bearer {FORGE_TOKEN}", "Accept": "application/vnd.github+json"}
    with httpx.Client(base_url=forge_session.url) as client:
        missing = client.post(
            f"/repos/{name}/pulls", json={"title": "t", "head": "backout/revert-1"}, headers=github
        )
        assert missing.status_code == 422
        assert missing.json()["errors"] == [
            {"resource": "PullRequest", "field": "base", "code": "missing_field"}
        ]
        wrong_type = client.post(
            f"/repos/{name}/pulls",
            json={"title": 1, "head": "backout/revert-1", "base": "main"},
            headers=github,
        )
        assert wrong_type.status_code == 422
        no_branch = client.post(
            f"/repos/{name}/pulls", json={"title": "t", "head": "nope", "base": "main"}, headers=github
        )
        assert no_branch.json()["errors"][0]["field"] == "head"
        no_accept = client.post(
            f"/repos/{name}/pulls",
            json={"title": "t", "head": "backout/revert-1", "base": "main"},
            headers={"Authorization": f"token {FORGE_TOKEN}"},
        )
        assert no_accept.status_code == 415
        unencoded = client.post(
            f"/api/v4/projects/group/{fleet.name}/merge_requests",
            json={"source_branch": "backout/revert-1", "target_branch": "main", "title": "t"},
            headers={"PRIVATE-TOKEN": FORGE_TOKEN},
        )
        assert unencoded.status_code == 404
        no_title = client.post(
            f"/api/v4/projects/group%2F{fleet.name}/merge_requests",
            json={"source_branch": "backout/revert-1", "target_branch": "main"},
            headers={"PRIVATE-TOKEN": FORGE_TOKEN},
        )
        assert no_title.status_code == 400 and "title is missing" in no_title.json()["error"]
