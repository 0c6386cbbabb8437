"""The change ledger on real Flux: a change of a Flux-managed object carries its Git source and the
commit that introduced it (`backout changes --json`, the incident bundle); other changes do not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes.client import V1ConfigMap, V1ObjectMeta

from activities.context import build_bundle
from activities.kube import history
from config import Settings
from devstack.cluster.local import LocalCluster
from incidents.bundle import bundle_to_json, parse_bundle
from incidents.models import ContextRequest
from tests.gitops.conftest import FluxSetup, ensure_git_auth, gitops_config
from tests.gitops.test_handshake import bad_prompt_applied

pytestmark = [pytest.mark.kube, pytest.mark.slow]


def settings_for(flux_setup: FluxSetup, kube_cluster: LocalCluster, tmp_path: Path) -> Settings:
    ensure_git_auth(flux_setup.apis, flux_setup.namespace)
    return Settings(
        state_dir=tmp_path / "state",
        kubeconfig=kube_cluster.kubeconfig,
        allowed_namespaces=[flux_setup.namespace],
        gitops=gitops_config(flux_setup.fleet, flux_setup.namespace, tmp_path / "clones"),
    )


def plain_configmap_changed(flux_setup: FluxSetup) -> None:
    """A ConfigMap nobody reconciles, edited twice: a change without a Git origin."""
    apis, namespace = flux_setup.apis, flux_setup.namespace
    apis.core.create_namespaced_config_map(
        namespace, V1ConfigMap(metadata=V1ObjectMeta(name="feature-flags"), data={"rerank": "off"})
    )
    history.record_now(apis, namespace)
    apis.core.patch_namespaced_config_map("feature-flags", namespace, {"data": {"rerank": "on"}})
    history.record_now(apis, namespace)


def test_backout_changes_json_lists_the_commit_sha_and_author_of_gitops_changes(
    flux_setup: FluxSetup, kube_cluster: LocalCluster, tmp_path: Path
) -> None:
    _good, bad = bad_prompt_applied(flux_setup)
    plain_configmap_changed(flux_setup)
    settings = settings_for(flux_setup, kube_cluster, tmp_path)
    env = {key: value for key, value in os.environ.items() if not key.startswith("BACKOUT_")}
    env.update(
        {
            "BACKOUT_KUBECONFIG": str(kube_cluster.kubeconfig),
            "BACKOUT_STATE_DIR": str(settings.state_dir),
            "BACKOUT_ALLOWED_NAMESPACES": flux_setup.namespace,
            "BACKOUT_GITOPS": json.dumps(settings.gitops.model_dump(mode="json")),
        }
    )
    command = [str(Path(sys.executable).with_name("backout")), "changes", "-n", flux_setup.namespace]
    listed = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    changes = {change["id"]: change for change in json.loads(listed.stdout)}

    prompt = changes[f"k8s:configmap:{flux_setup.namespace}/prompt-config:v2"]
    origin = prompt["gitops"]
    assert origin["tool"] == "flux" and origin["reconciler"] == f"Kustomization/{flux_setup.namespace}/apps"
    assert (origin["repository"], origin["branch"], origin["path"]) == (flux_setup.fleet.url, "main", "apps")
    assert origin["revision"] == bad and origin["manifest"] == "apps/prompt.yaml"
    commit = origin["commit"]
    assert (commit["sha"], commit["author"], commit["author_email"]) == (
        bad,
        "Dana Developer",
        "dana@example.com",
    )
    assert commit["message"] == "prompt: let the model improvise" and commit["files"] == ["apps/prompt.yaml"]
    assert prompt["author"] == "Dana Developer"
    assert changes[f"k8s:configmap:{flux_setup.namespace}/feature-flags:v2"]["gitops"] is None

    text = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert text.returncode == 0, text.stderr
    assert f"[git {bad[:12]} by Dana Developer: prompt: let the model improvise]" in text.stdout
    # The token came from a Secret and went to git in a header: nowhere in what backout printed.
    assert "glpat-gitops-test" not in listed.stdout + listed.stderr + text.stdout + text.stderr


def test_the_incident_bundle_names_the_commit_and_stays_a_v1_bundle(
    flux_setup: FluxSetup, kube_cluster: LocalCluster, tmp_path: Path
) -> None:
    _good, bad = bad_prompt_applied(flux_setup)
    settings = settings_for(flux_setup, kube_cluster, tmp_path)
    now = datetime.now(UTC)
    request = ContextRequest(
        incident_id="inc-ledger",
        service="prompt-config",
        namespace=flux_setup.namespace,
        source="alertmanager",
        detected_at=now,
        lookback_s=int(timedelta(hours=1).total_seconds()),
    )
    bundle = build_bundle(settings, request, now).bundle
    [change] = [c for c in bundle.changes if c.id.endswith("prompt-config:v2")]
    assert change.gitops is not None and change.gitops.commit is not None
    assert change.gitops.commit.sha == bad

    wire = bundle_to_json(bundle)
    assert wire["version"] == 1
    again = parse_bundle(json.loads(json.dumps(wire)))
    assert again.changes == bundle.changes
    # A spec-v1 reader that knows nothing of the extension reads the same bundle.
    for item in wire["changes"]:
        item.pop("gitops")
    assert [c.id for c in parse_bundle(wire).changes] == [c.id for c in bundle.changes]
