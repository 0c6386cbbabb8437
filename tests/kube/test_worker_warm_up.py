"""The worker's warm-up (worker/worker.py): the shared Kubernetes client is built and connected
before the first incident needs it, and a cluster out of reach does not stop the worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from activities.kube import client as kube_client
from config import Settings
from devstack.cluster.kubeconfig import write_kubeconfig
from worker.temporal_server import free_port
from worker.worker import warm_up


def _connections(apis: Any) -> int:
    pools = apis.api_client.rest_client.pool_manager.pools
    # urllib3's pool container refuses plain iteration; its keys() is a snapshot.
    return sum(pools[key].num_connections for key in pools.keys())  # noqa: SIM118


@pytest.mark.kube
def test_warm_up_leaves_a_connected_shared_client(
    kube_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube_client, "_shared", {})  # as in a worker that just started
    warm_up(kube_settings)
    assert len(kube_client._shared) == 1, "the warm-up built no shared client"
    apis = kube_client.shared_apis(kube_settings)  # what the first incident gets: the same client
    assert next(iter(kube_client._shared.values()))[1] is apis
    assert _connections(apis) >= 1, "the warm-up left no connection to the apiserver open"


def test_warm_up_against_a_cluster_out_of_reach_returns(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    ca = tmp_path / "ca.crt"
    ca.write_text("")
    write_kubeconfig(kubeconfig, f"https://127.0.0.1:{free_port()}", ca, None, None, token="t")
    warm_up(Settings(state_dir=tmp_path, kubeconfig=kubeconfig, allowed_namespaces=["shop"]))
