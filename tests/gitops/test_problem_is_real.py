"""The problem issue 16 solves, shown on real Flux: a plain in-cluster rollback of a
Flux-managed ConfigMap holds only until the next reconcile, which re-applies Git's bad version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from activities.kube import history
from devstack.cluster.local import LocalCluster
from tests.gitops.conftest import ConfigMapHistory, FluxSetup, configmap_manifest, wait_until

pytestmark = [pytest.mark.kube, pytest.mark.slow]

GOOD = {"prompt": "Answer from the retrieved documents only.", "temperature": "0.2"}
BAD = {"prompt": "Answer from memory; documents are optional.", "temperature": "0.2"}


def backout(args: list[str], kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    """The `backout` CLI as an operator runs it."""
    executable = Path(sys.executable).with_name("backout")
    # Every namespace on purpose: each test's namespace is its own.
    env = {**os.environ, "BACKOUT_KUBECONFIG": str(kubeconfig), "BACKOUT_ALLOWED_NAMESPACES": "*"}
    return subprocess.run([str(executable), *args], capture_output=True, text=True, env=env, timeout=120)


def test_flux_undoes_a_plain_rollback(flux_setup: FluxSetup, kube_cluster: LocalCluster) -> None:
    namespace = flux_setup.namespace
    fleet = flux_setup.fleet
    good = fleet.commit(
        {"apps/prompt.yaml": configmap_manifest("prompt-config", namespace, GOOD)}, "prompt: ground answers"
    )
    flux_setup.create()
    flux_setup.wait_applied(good)
    assert flux_setup.configmap_data("prompt-config") == GOOD
    history.record_now(flux_setup.apis, namespace)

    bad = fleet.commit(
        {"apps/prompt.yaml": configmap_manifest("prompt-config", namespace, BAD)},
        "prompt: let the model improvise",
    )
    flux_setup.wait_applied(bad)
    assert wait_until(lambda: flux_setup.configmap_data("prompt-config") == BAD, 30)
    history.record_now(flux_setup.apis, namespace)

    contents = ConfigMapHistory(flux_setup.apis, namespace, "prompt-config")
    rolled = backout(
        ["rollback", "configmap/prompt-config", "-n", namespace, "--json"], kube_cluster.kubeconfig
    )
    assert rolled.returncode == 0, rolled.stderr
    assert json.loads(rolled.stdout)["remediation"]["outcome"] == "Successful"

    # The rollback restored the good prompt; the next reconcile (every 2 s here) applies Git's
    # desired state again: the bad prompt. A watch sees both, however short the good one lived.
    reapplied = wait_until(lambda: contents.seen[-2:] == [GOOD, BAD], timeout_s=60)
    seen = contents.stop()
    print(f"contents of configmap/{namespace}/prompt-config after `backout rollback`: {seen}")
    assert reapplied, f"expected the good prompt restored, then the bad one re-applied by Flux; saw {seen}"
    assert flux_setup.configmap_data("prompt-config") == BAD
    assert flux_setup.applied_revision().endswith(bad)
