"""Verification of rollouts that finish or fail, and the change ledger as `backout changes --json` shows it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from activities.kube import history
from activities.kube.client import KubeApis
from config import Settings
from devstack.cluster.local import LocalCluster
from tests.kube.helpers import create_deployment, patch_template_annotation, set_image, wait_rollout

pytestmark = pytest.mark.kube


def test_a_rollout_that_cannot_finish_is_a_failed_verification(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1", progressDeadlineSeconds=3)
    body = {"spec": {"template": {"spec": {"nodeSelector": {"gpu": "h100-that-does-not-exist"}}}}}
    kube_apis.apps.patch_namespaced_deployment("web", kube_namespace, body)
    result = wait_rollout(kube_apis, kube_namespace, "web", timeout_s=60)
    assert result.outcome == "Failed", result.message
    assert result.details["reason"] == "ProgressDeadlineExceeded"
    assert "ProgressDeadlineExceeded" in result.message


def test_a_rollout_still_running_at_the_deadline_is_inconclusive(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1", progressDeadlineSeconds=600)
    body = {"spec": {"template": {"spec": {"nodeSelector": {"gpu": "h100-that-does-not-exist"}}}}}
    kube_apis.apps.patch_namespaced_deployment("web", kube_namespace, body)
    result = wait_rollout(kube_apis, kube_namespace, "web", timeout_s=3)
    assert result.outcome == "Inconclusive"
    assert "not finished after 3s" in result.message
    # The on-call engineer is told why: the new pod cannot be scheduled anywhere.
    assert "Pending" in result.details["pods"], result.message
    assert "scheduled" in result.details["pods"], result.message


def test_backout_changes_json_lists_every_change_with_its_kind(
    kube_apis: KubeApis, kube_namespace: str, kube_cluster: LocalCluster, kube_settings: Settings
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    set_image(kube_apis, kube_namespace, "web", "registry.local/web:2", cause="deploy web 2")
    patch_template_annotation(kube_apis, kube_namespace, "web", "backout.dev/model-version", "llama-3.1-8b")
    kube_apis.core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "prompts"}, "data": {"system": "v1"}}
    )
    history.record_now(kube_apis, kube_namespace)
    kube_apis.core.patch_namespaced_config_map("prompts", kube_namespace, {"data": {"system": "v2"}})
    kube_apis.core.patch_namespaced_config_map(
        "prompts",
        kube_namespace,
        {"metadata": {"annotations": {"backout.dev/prompt-version": "p-7"}}, "data": {"system": "v3"}},
    )
    # No recorder runs here: `backout changes` sweeps first, so it sees the latest edit.
    backout = Path(sys.executable).with_name("backout")
    completed = subprocess.run(
        [str(backout), "changes", "-n", kube_namespace, "--since", "1h", "--json"],
        env={**os.environ, "BACKOUT_KUBECONFIG": str(kube_cluster.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    changes = json.loads(completed.stdout)
    summary = [(c["kind"], c["service"], c["from_version"], c["to_version"]) for c in changes]
    assert ("image", "web", "registry.local/web:1", "registry.local/web:2") in summary
    assert ("model", "web", "none", "llama-3.1-8b") in summary
    assert ("prompt", "prompts", "none", "p-7") in summary
    image_change = next(c for c in changes if c["kind"] == "image")
    assert image_change["description"] == "deploy web 2"
    assert image_change["rollback"] == {
        "type": "deployment",
        "name": "web",
        "namespace": kube_namespace,
        "revision": 2,
        "version": None,
    }
    prompt_change = next(c for c in changes if c["kind"] == "prompt")
    assert prompt_change["rollback"]["type"] == "configmap" and prompt_change["rollback"]["version"] == "2"
    assert [c["started_at"] for c in changes] == sorted(c["started_at"] for c in changes)


def test_backout_changes_rejects_a_bad_since(kube_settings: Settings) -> None:
    backout = Path(sys.executable).with_name("backout")
    completed = subprocess.run(
        [str(backout), "changes", "--since", "yesterday"], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 2
    assert "--since 'yesterday'" in completed.stderr and "Traceback" not in completed.stderr
