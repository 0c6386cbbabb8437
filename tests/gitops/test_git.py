"""Git over HTTP on loopback (git http-backend) and backout's Git operations against it:
read, find the culprit commit, revert, push, conflicts, and tokens that never leak."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from activities.gitops.git import GitError, GitRepository
from activities.gitops.manifests import ManifestNotFound, find_culprit
from activities.gitops.secrets import Redactor
from config.gitops import GitIdentity
from devstack.gitops.git_server import GitHttpServer
from incidents.gitops import GitSource, ObjectRef
from tests.gitops.conftest import GIT_TOKEN, GIT_USER, Fleet, configmap_manifest

PROMPT = ObjectRef(api_version="v1", kind="ConfigMap", name="prompt-config", namespace="chat")


def repository(fleet: Fleet, tmp_path: Path, redactor: Redactor, token: str = GIT_TOKEN) -> GitRepository:
    return GitRepository(
        fleet.url,
        tmp_path / "cache",
        redactor,
        GitIdentity(name="backout", email="backout@example.com"),
        username=GIT_USER,
        token=SecretStr(token),
        timeout_s=30,
    )


def three_commits(fleet: Fleet) -> tuple[str, str, str]:
    first = fleet.commit(
        {
            "apps/prompt.yaml": configmap_manifest(
                "prompt-config", "chat", {"prompt": "ground", "temperature": "0.2"}
            ),
            "apps/other.yaml": configmap_manifest("other", "chat", {"k": "v"}),
        },
        "chat: first prompt",
    )
    culprit = fleet.commit(
        {
            "apps/prompt.yaml": configmap_manifest(
                "prompt-config", "chat", {"prompt": "improvise", "temperature": "0.2"}
            )
        },
        "chat: let the model improvise",
        author=("Casey Culprit", "casey@example.com"),
    )
    later = fleet.commit(
        {"apps/other.yaml": configmap_manifest("other", "chat", {"k": "w"})}, "other: bump k"
    )
    return first, culprit, later


def test_the_server_needs_credentials_and_serves_clone_and_push(
    git_server: GitHttpServer, fleet: Fleet
) -> None:
    fleet.commit({"README.md": "fleet\n"}, "init")
    anonymous = subprocess.run(
        ["git", "ls-remote", fleet.url],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "GIT_TERMINAL_PROMPT": "0"},
    )
    assert anonymous.returncode != 0
    served = [r for r in git_server.requests if fleet.name in r.path]
    assert any(r.status == 401 and r.user is None for r in served)


def test_culprit_is_the_commit_that_changed_the_object_not_the_newest(fleet: Fleet, tmp_path: Path) -> None:
    _first, culprit, later = three_commits(fleet)
    repo = repository(fleet, tmp_path, Redactor())
    with repo.locked():
        repo.fetch()
        assert repo.branch_tip("main") == later
        source = GitSource(repo_url=fleet.url, branch="main", path="apps", revision=later)
        found = find_culprit(
            repo, source, PROMPT, live={"data": {"prompt": "improvise", "temperature": "0.2"}}
        )
    assert found.commit.sha == culprit
    assert found.commit.author_name == "Casey Culprit"
    assert found.commit.author_email == "casey@example.com"
    assert found.commit.subject == "chat: let the model improvise"
    assert [(f.path, f.status) for f in found.commit.files] == [("apps/prompt.yaml", "modified")]
    assert found.manifest_path == "apps/prompt.yaml"
    assert "-  prompt: ground" in found.object_diff and "+  prompt: improvise" in found.object_diff
    assert found.matches_live is True


def test_culprit_of_an_unknown_object_is_a_clear_error(fleet: Fleet, tmp_path: Path) -> None:
    *_, later = three_commits(fleet)
    repo = repository(fleet, tmp_path, Redactor())
    with repo.locked():
        repo.fetch()
        source = GitSource(repo_url=fleet.url, branch="main", path="apps", revision=later)
        with pytest.raises(ManifestNotFound, match="configmap/chat/missing"):
            find_culprit(repo, source, PROMPT.model_copy(update={"name": "missing"}), None)


def test_revert_pushed_over_http_lands_on_the_branch(fleet: Fleet, tmp_path: Path) -> None:
    _first, culprit, later = three_commits(fleet)
    repo = repository(fleet, tmp_path, Redactor())
    with repo.locked():
        repo.fetch()
        attempt = repo.revert_onto(repo.commit(culprit), later, "backout incident inc-1")
        assert attempt.sha is not None and not attempt.conflict_files
        assert repo.push(attempt.sha, "main") == "pushed"
        assert repo.push(attempt.sha, "main") == "up-to-date"
    assert fleet.remote_head() == attempt.sha
    shown = subprocess.run(
        ["git", "-C", str(fleet.bare), "show", "main:apps/prompt.yaml"], capture_output=True, text=True
    )
    assert 'prompt: "ground"' in shown.stdout
    message = subprocess.run(
        ["git", "-C", str(fleet.bare), "log", "-1", "--format=%an|%B", "main"], capture_output=True, text=True
    )
    assert message.stdout.startswith(
        f'backout|Revert "chat: let the model improvise"\n\nThis reverts commit {culprit}.'
    )
    with repo.locked():
        repo.fetch()
        assert repo.find_revert_of(culprit, "refs/remotes/origin/main") == attempt.sha


def test_a_push_behind_a_concurrent_push_is_rejected_not_forced(fleet: Fleet, tmp_path: Path) -> None:
    _first, culprit, later = three_commits(fleet)
    repo = repository(fleet, tmp_path, Redactor())
    with repo.locked():
        repo.fetch()
        attempt = repo.revert_onto(repo.commit(culprit), later, "note")
    newer = fleet.commit(
        {"apps/third.yaml": configmap_manifest("third", "chat", {"a": "b"})}, "someone else pushed"
    )
    with repo.locked():
        assert attempt.sha is not None
        assert repo.push(attempt.sha, "main") == "rejected"
    assert fleet.remote_head() == newer


def test_a_conflicting_revert_reports_files_and_diff_and_leaves_nothing(fleet: Fleet, tmp_path: Path) -> None:
    fleet.commit(
        {"apps/prompt.yaml": configmap_manifest("prompt-config", "chat", {"prompt": "ground"})}, "first"
    )
    culprit = fleet.commit(
        {"apps/prompt.yaml": configmap_manifest("prompt-config", "chat", {"prompt": "improvise"})}, "bad"
    )
    # A later edit right next to the culprit's line (a comment: the object itself is unchanged).
    later = fleet.commit(
        {
            "apps/prompt.yaml": configmap_manifest(
                "prompt-config", "chat", {"prompt": "improvise"}, comment_after="prompt"
            )
        },
        "annotate",
    )
    repo = repository(fleet, tmp_path, Redactor())
    with repo.locked():
        repo.fetch()
        source = GitSource(repo_url=fleet.url, branch="main", path="apps", revision=later)
        assert find_culprit(repo, source, PROMPT, None).commit.sha == culprit
        attempt = repo.revert_onto(repo.commit(culprit), later, "note")
        worktrees = subprocess.run(
            ["git", "-C", str(repo.path), "worktree", "list"], capture_output=True, text=True
        )
    assert attempt.sha is None
    assert attempt.conflict_files == ["apps/prompt.yaml"]
    assert '-  prompt: "improvise"' in attempt.diff and '+  prompt: "ground"' in attempt.diff
    assert len(worktrees.stdout.strip().splitlines()) == 1, worktrees.stdout
    assert fleet.remote_head() == later


def test_a_wrong_token_fails_with_a_message_that_does_not_carry_it(fleet: Fleet, tmp_path: Path) -> None:
    fleet.commit({"README.md": "x\n"}, "init")
    wrong = "wrong-token-abcdef123456"
    redactor = Redactor()
    repo = repository(fleet, tmp_path, redactor, token=wrong)
    with repo.locked(), pytest.raises(GitError) as raised:
        repo.fetch()
    assert wrong not in str(raised.value)
    assert (
        "401" in str(raised.value)
        or "Authentication failed" in str(raised.value)
        or "could not read" in str(raised.value)
    )


def test_the_token_stays_out_of_the_cached_clone(fleet: Fleet, tmp_path: Path) -> None:
    three_commits(fleet)
    repo = repository(fleet, tmp_path, Redactor())
    with repo.locked():
        repo.fetch()
    leaked = subprocess.run(
        ["grep", "-r", "-l", GIT_TOKEN, str(tmp_path / "cache")], capture_output=True, text=True
    )
    assert leaked.stdout == "", f"token found in {leaked.stdout}"
    config = (repo.path / "config").read_text()
    assert GIT_USER not in config and fleet.url in config


def test_a_kustomization_file_is_followed_into_its_bases(fleet: Fleet, tmp_path: Path) -> None:
    fleet.commit(
        {
            "base/prompt.yaml": configmap_manifest("prompt-config", "chat", {"prompt": "ground"}),
            "base/kustomization.yaml": "resources:\n  - prompt.yaml\n",
            "clusters/prod/kustomization.yaml": "resources:\n  - ../../base\n  - extra.yaml\n",
            "clusters/prod/extra.yaml": configmap_manifest("extra", "chat", {"a": "b"}),
            "clusters/prod/unused.yaml": configmap_manifest("prompt-config", "chat", {"prompt": "decoy"}),
        },
        "layout",
    )
    culprit = fleet.commit(
        {"base/prompt.yaml": configmap_manifest("prompt-config", "chat", {"prompt": "improvise"})}, "bad base"
    )
    fleet.commit(
        {"clusters/prod/unused.yaml": configmap_manifest("prompt-config", "chat", {"prompt": "decoy2"})},
        "decoy",
    )
    repo = repository(fleet, tmp_path, Redactor())
    with repo.locked():
        repo.fetch()
        tip = repo.branch_tip("main")
        assert tip is not None
        source = GitSource(repo_url=fleet.url, branch="main", path="./clusters/prod/", revision=tip)
        found = find_culprit(repo, source, PROMPT, None)
    assert found.commit.sha == culprit
    assert found.manifest_path == "base/prompt.yaml"


def test_a_fleet_and_its_reverts_work_from_a_relative_directory(
    git_server: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`backout demo --gitops` keeps its state under the relative .backout/ by default."""
    monkeypatch.chdir(tmp_path)
    fleet = Fleet(git_server, f"fleet-{uuid.uuid4().hex[:8]}", Path(".backout/demo/gitops/fleet-work"))
    assert fleet.workdir.is_absolute()
    _first, culprit, later = three_commits(fleet)
    repo = repository(fleet, tmp_path, Redactor())
    with repo.locked():
        repo.fetch()
        source = GitSource(repo_url=fleet.url, branch="main", path="apps", revision=later)
        found = find_culprit(
            repo, source, PROMPT, live={"data": {"prompt": "improvise", "temperature": "0.2"}}
        )
    assert found.commit.sha == culprit
