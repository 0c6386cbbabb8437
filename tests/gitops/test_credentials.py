"""Git and provider tokens never reach results, errors, logs or workflow history."""

from __future__ import annotations

import base64
import logging
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from temporalio.client import Client
from temporalio.worker import Worker

from activities.gitops.activities import GitOpsActivities, OpenChangeRequestRequest, WriteRevertRequest
from activities.gitops.git import GitRepository
from activities.gitops.manifests import find_culprit
from activities.gitops.secrets import CredentialError, Redactor, resolve
from config.gitops import (
    Credential,
    GitCredentials,
    GitHubConfig,
    GitIdentity,
    GitOpsConfig,
    RepositoryConfig,
    SecretKeyRef,
)
from devstack.gitops.forge import ForgeRecorder
from incidents.gitops import GitSource, ObjectRef, RevertCommit
from tests.gitops.conftest import GIT_TOKEN, GIT_USER, Fleet, configmap_manifest
from tests.gitops.probe_workflow import GitOpsProbeWorkflow

WRONG_FORGE_TOKEN = "ghp_wrongforgetoken_0123456789abcdef"


def encodings(token: str, username: str = GIT_USER) -> list[str]:
    return [
        token,
        base64.b64encode(token.encode()).decode(),
        base64.b64encode(f"{username}:{token}".encode()).decode(),
    ]


def test_the_redactor_masks_every_usual_encoding() -> None:
    redactor = Redactor()
    redactor.add("s3cret-token/with+chars", username="bot")
    text = (
        "raw s3cret-token/with+chars, quoted s3cret-token%2Fwith%2Bchars, "
        f"basic {base64.b64encode(b'bot:s3cret-token/with+chars').decode()}, "
        "url https://someone:other-pass@git.example.com/x.git, header Authorization: Bearer abc.def, PRIVATE-TOKEN: glpat-1"
    )
    masked = redactor(text)
    for leaked in ("s3cret", "other-pass", "abc.def", "glpat-1", "Ym90Oi"):
        assert leaked not in masked
    assert masked.count("***") == 6
    assert redactor.scrub({"a": ["s3cret-token/with+chars", 3]}) == {"a": ["***", 3]}


def test_credentials_come_from_exactly_one_place_and_errors_name_the_secret_not_the_value() -> None:
    with pytest.raises(ValidationError):
        Credential()
    with pytest.raises(ValidationError):
        Credential(value=SecretStr("x" * 10), secret_ref=SecretKeyRef(namespace="n", name="s", key="k"))
    with pytest.raises(ValidationError, match="credentials"):
        RepositoryConfig(url="https://bot:tok@git.example.com/fleet.git")

    def missing(ref: SecretKeyRef) -> str:
        raise CredentialError(f"Secret {ref.namespace}/{ref.name} has no key {ref.key!r}")

    with pytest.raises(CredentialError, match="Secret ops/git has no key 'token'"):
        resolve(
            Credential(secret_ref=SecretKeyRef(namespace="ops", name="git", key="token")), missing, Redactor()
        )
    redactor = Redactor()
    assert (
        resolve(Credential(value=SecretStr("inline-token-123")), None, redactor).get_secret_value()
        == "inline-token-123"
    )
    assert redactor("inline-token-123") == "***"
    assert "inline-token-123" not in repr(Credential(value=SecretStr("inline-token-123")))


@pytest.mark.temporal
async def test_tokens_never_reach_workflow_history_or_logs(
    temporal_client: Client,
    forge_session: ForgeRecorder,
    fleet: Fleet,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fleet.commit(
        {"apps/prompt.yaml": configmap_manifest("prompt-config", "chat", {"prompt": "ground"})}, "first"
    )
    bad = fleet.commit(
        {"apps/prompt.yaml": configmap_manifest("prompt-config", "chat", {"prompt": "improvise"})}, "bad"
    )
    forge_session.add_repository(f"acme/{fleet.name}", fleet.bare)
    forge_session.echo_credentials_on_401 = True
    config = GitOpsConfig(
        cache_dir=tmp_path / "cache",
        author=GitIdentity(name="backout", email="backout@example.com"),
        repositories=[
            RepositoryConfig(
                url=fleet.url,
                credentials=GitCredentials(username=GIT_USER, token=Credential(value=SecretStr(GIT_TOKEN))),
                provider=GitHubConfig(
                    api_url=forge_session.github_api_url,
                    repository=f"acme/{fleet.name}",
                    token=Credential(value=SecretStr(WRONG_FORGE_TOKEN)),
                ),
            )
        ],
    )

    def no_cluster() -> None:
        raise AssertionError("inline credentials need no cluster")

    activities = GitOpsActivities(config, no_cluster, allowed=lambda namespace: True)  # type: ignore[arg-type]
    reader = GitRepository(
        fleet.url, tmp_path / "reader", Redactor(), config.author, GIT_USER, SecretStr(GIT_TOKEN)
    )
    with reader.locked():
        reader.fetch()
        source = GitSource(repo_url=fleet.url, branch="main", path="apps", revision=bad)
        culprit = find_culprit(
            reader,
            source,
            ObjectRef(api_version="v1", kind="ConfigMap", name="prompt-config", namespace="chat"),
        )
    revert = WriteRevertRequest(incident_id="inc-secret", culprit=culprit, mode="branch")
    change = OpenChangeRequestRequest(
        incident_id="inc-secret",
        culprit=culprit,
        revert=RevertCommit(
            sha=bad, branch=f"backout/revert-{bad[:12]}-inc-secret", reverts=bad, pushed_to="x", diff=""
        ),
    )
    task_queue = f"gitops-{uuid.uuid4().hex[:8]}"
    caplog.set_level(logging.DEBUG)
    try:
        async with Worker(
            temporal_client, task_queue=task_queue, workflows=[GitOpsProbeWorkflow], activities=activities.all
        ):
            handle = await temporal_client.start_workflow(
                GitOpsProbeWorkflow.run,
                args=[revert, change],
                id=f"probe-{task_queue}",
                task_queue=task_queue,
            )
            outcomes = await handle.result()
            history = (await handle.fetch_history()).to_json()
    finally:
        forge_session.echo_credentials_on_401 = False
    assert outcomes[0].startswith("Successful: pushed"), outcomes
    assert outcomes[1].startswith("failed:") and "Bad credentials" in outcomes[1], outcomes
    # The forge did echo the token: the redactor, not luck, keeps it out.
    assert any(WRONG_FORGE_TOKEN in str(call) for call in [c.headers for c in forge_session.calls])
    assert "***" in history
    logs = caplog.text
    for token, username in ((GIT_TOKEN, GIT_USER), (WRONG_FORGE_TOKEN, "x")):
        for form in encodings(token, username):
            assert form not in history, f"{form!r} in workflow history"
            assert form not in logs, f"{form!r} in logs"
            assert form not in "\n".join(outcomes)
