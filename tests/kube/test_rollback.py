"""Deployment rollback against the real apiserver: kubectl-undo semantics, dry run, idempotency, guards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import typer
from kubernetes.client.exceptions import ApiException
from typer.testing import CliRunner

from activities.kube import guards, ledger, remediation
from activities.kube.client import KubeApis, retry_on_conflict
from config import Settings, load_settings
from incidents.bundle import Change, RollbackHandle
from incidents.remediation import RemediationRequest
from tests.kube.helpers import create_deployment, current_images, running_pod_images, set_image, wait_until
from worker.cli import app as cli_app

pytestmark = pytest.mark.kube


def _cli() -> typer.Typer:
    return cli_app


def _three_images(apis: KubeApis, namespace: str) -> None:
    create_deployment(apis, namespace, "web", "registry.local/web:1")
    set_image(apis, namespace, "web", "registry.local/web:2", cause="deploy web 2")
    set_image(apis, namespace, "web", "registry.local/web:3", cause="deploy web 3")


def _rollback(namespace: str, incident: str = "inc-1", **fields: object) -> RemediationRequest:
    return RemediationRequest(
        incident_id=incident,
        operation="rollback",
        target_type="deployment",
        name="web",
        namespace=namespace,
        **fields,
    )


def _max_revision(apis: KubeApis, namespace: str) -> int:
    deployment = apis.apps.read_namespaced_deployment("web", namespace)
    return max(ledger.revision_of(rs) or 0 for rs in ledger.owned_replica_sets(apis, deployment))


def test_cli_rollback_restores_the_second_image_and_the_rollout_completes(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    _three_images(kube_apis, kube_namespace)
    result = CliRunner().invoke(
        _cli(), ["rollback", "deployment/web", "-n", kube_namespace, "--timeout", "60"]
    )
    assert result.exit_code == 0, result.output
    assert "rolled back from revision 3 to 2" in result.output
    assert "verification Successful" in result.output
    assert current_images(kube_apis, kube_namespace, "web") == ["registry.local/web:2"]
    pods = wait_until(lambda: running_pod_images(kube_apis, kube_namespace, "web"))
    assert sorted(pods.values()) == ["registry.local/web:2", "registry.local/web:2"]

    # The ledger keeps the revision the rollback renumbered (2 -> 4) and marks backout's own change.
    changes = ledger.list_changes(kube_apis, [kube_namespace], datetime.now(UTC) - timedelta(hours=1))
    image_steps = [(c.from_version, c.to_version, c.author) for c in changes if c.kind == "image"]
    assert image_steps == [
        ("registry.local/web:1", "registry.local/web:2", None),
        ("registry.local/web:2", "registry.local/web:3", None),
        ("registry.local/web:3", "registry.local/web:2", "backout"),
    ]


def test_rollback_to_the_revision_before_a_given_change(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    _three_images(kube_apis, kube_namespace)
    changes = ledger.list_changes(kube_apis, [kube_namespace], datetime.now(UTC) - timedelta(hours=1))
    first_change = next(change for change in changes if change.to_version == "registry.local/web:2")
    result = remediation.remediate(kube_apis, kube_settings, _rollback(kube_namespace, change=first_change))
    assert (result.outcome, result.applied, result.to_version) == ("Successful", True, "1")
    assert "+  - image: registry.local/web:1" in result.diff
    assert current_images(kube_apis, kube_namespace, "web") == ["registry.local/web:1"]


def test_dry_run_shows_the_diff_and_changes_nothing(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    _three_images(kube_apis, kube_namespace)
    before_revision = _max_revision(kube_apis, kube_namespace)
    result = remediation.remediate(kube_apis, kube_settings, _rollback(kube_namespace, dry_run=True))
    assert (result.outcome, result.applied, result.dry_run) == ("Successful", False, True)
    assert "-  - image: registry.local/web:3" in result.diff
    assert "+  - image: registry.local/web:2" in result.diff
    assert current_images(kube_apis, kube_namespace, "web") == ["registry.local/web:3"]
    assert _max_revision(kube_apis, kube_namespace) == before_revision
    assert guards.read_action_log(kube_apis, kube_namespace) == []


def test_a_retried_rollback_is_applied_once(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    _three_images(kube_apis, kube_namespace)
    request = _rollback(kube_namespace, incident="inc-retry")
    first = remediation.remediate(kube_apis, kube_settings, request)
    assert first.applied and first.to_version == "2"
    revision_after_first = _max_revision(kube_apis, kube_namespace)

    second = remediation.remediate(kube_apis, kube_settings, request)
    assert second.message.startswith("already applied")
    # The activity crashed after patching but before logging: the stamp on the object still tells.
    kube_apis.core.delete_namespaced_config_map(guards.ACTION_LOG_NAME, kube_namespace)
    third = remediation.remediate(kube_apis, kube_settings, request)
    assert "found backout.dev/applied-by" in third.message

    assert _max_revision(kube_apis, kube_namespace) == revision_after_first
    assert current_images(kube_apis, kube_namespace, "web") == ["registry.local/web:2"]
    assert len(guards.read_action_log(kube_apis, kube_namespace)) == 1


def test_a_paused_deployment_is_refused(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    _three_images(kube_apis, kube_namespace)
    kube_apis.apps.patch_namespaced_deployment("web", kube_namespace, {"spec": {"paused": True}})
    result = remediation.remediate(kube_apis, kube_settings, _rollback(kube_namespace))
    assert result.outcome == "Failed" and not result.applied
    assert "paused" in result.message
    assert current_images(kube_apis, kube_namespace, "web") == ["registry.local/web:3"]


def test_never_rolls_back_to_a_revision_this_incident_rolled_away_from(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    _three_images(kube_apis, kube_namespace)
    assert remediation.remediate(
        kube_apis, kube_settings, _rollback(kube_namespace, incident="inc-loop")
    ).applied
    # Revision 3 (web:3) is what inc-loop rolled away from.
    again = remediation.remediate(
        kube_apis, kube_settings, _rollback(kube_namespace, incident="inc-loop", to_revision=3)
    )
    assert again.outcome == "Failed" and "already rolled away from" in again.message
    assert current_images(kube_apis, kube_namespace, "web") == ["registry.local/web:2"]
    other = remediation.remediate(
        kube_apis, kube_settings, _rollback(kube_namespace, incident="inc-other", to_revision=3)
    )
    assert other.applied and current_images(kube_apis, kube_namespace, "web") == ["registry.local/web:3"]


def test_rollbacks_per_namespace_per_hour_are_capped(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    _three_images(kube_apis, kube_namespace)
    capped = load_settings(max_rollbacks_per_namespace_per_hour=1)
    assert remediation.remediate(kube_apis, capped, _rollback(kube_namespace, incident="inc-a")).applied
    refused = remediation.remediate(
        kube_apis, capped, _rollback(kube_namespace, incident="inc-b", to_revision=3)
    )
    assert refused.outcome == "Failed" and "max_rollbacks_per_namespace_per_hour=1" in refused.message
    assert current_images(kube_apis, kube_namespace, "web") == ["registry.local/web:2"]


def test_namespaces_outside_the_allow_list_are_never_touched(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    _three_images(kube_apis, kube_namespace)
    restricted = load_settings(allowed_namespaces=["payments"])
    result = remediation.remediate(kube_apis, restricted, _rollback(kube_namespace))
    assert result.outcome == "Failed" and "allow list" in result.message
    assert current_images(kube_apis, kube_namespace, "web") == ["registry.local/web:3"]


def test_pause_and_scale(kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    scale = RemediationRequest(
        incident_id="inc-s",
        operation="scale",
        target_type="deployment",
        name="web",
        namespace=kube_namespace,
        replicas=3,
    )
    result = remediation.remediate(kube_apis, kube_settings, scale)
    assert result.applied and (result.from_version, result.to_version) == ("2", "3")
    # The incident workflow passes the culprit change along as context, even when it is a ConfigMap's.
    config_change = Change(
        id="k8s:configmap:x/prompts:v2",
        service="prompts",
        started_at=datetime.now(UTC),
        rollback=RollbackHandle(type="configmap", name="prompts", namespace=kube_namespace, version="2"),
    )
    # "pause" is how requests scheduled before operations were named like actions spell pause_rollout.
    pause = RemediationRequest.model_validate(
        {**scale.model_dump(), "operation": "pause", "replicas": None, "change": config_change}
    )
    assert pause.operation == "pause_rollout"
    assert remediation.remediate(kube_apis, kube_settings, pause).applied
    assert kube_apis.apps.read_namespaced_deployment("web", kube_namespace).spec.paused is True


def test_conflicting_writes_are_retried_with_a_fresh_read(kube_apis: KubeApis, kube_namespace: str) -> None:
    kube_apis.core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "flags"}, "data": {"n": "0"}}
    )
    attempts: list[str] = []

    def increment() -> None:
        config_map = kube_apis.core.read_namespaced_config_map("flags", kube_namespace)
        attempts.append(config_map.metadata.resource_version)
        if len(attempts) == 1:  # someone else writes between our read and our write
            kube_apis.core.patch_namespaced_config_map("flags", kube_namespace, {"data": {"other": "x"}})
        config_map.data["n"] = str(int(config_map.data["n"]) + 1)
        kube_apis.core.replace_namespaced_config_map("flags", kube_namespace, config_map)

    retry_on_conflict(increment)
    final = kube_apis.core.read_namespaced_config_map("flags", kube_namespace)
    assert len(attempts) == 2 and attempts[0] != attempts[1]
    assert final.data == {"n": "1", "other": "x"}
    with pytest.raises(ApiException) as raised:
        stale = kube_apis.core.read_namespaced_config_map("flags", kube_namespace)
        stale.metadata.resource_version = attempts[0]
        kube_apis.core.replace_namespaced_config_map("flags", kube_namespace, stale)
    assert raised.value.status == 409
