"""The local control plane: wrapper modules derived from go.mod, a version-stamped apiserver, up/status/env/down."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from kubernetes import client
from typer.testing import CliRunner

from activities.kube.client import KubeApis, apis_from_kubeconfig
from devstack.cli import cluster as cluster_cli
from devstack.cluster import build
from devstack.cluster.local import LocalCluster
from tests.kube.helpers import wait_until

KUBERNETES_GO_MOD = """module k8s.io/kubernetes

go 1.24.0

require (
	k8s.io/api v0.0.0
	k8s.io/client-go v0.0.0
	sigs.k8s.io/yaml v1.4.0
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	k8s.io/sample-apiserver => ./staging/src/k8s.io/sample-apiserver
)
"""

ETCD_SERVER_GO_MOD = """module go.etcd.io/etcd/server/v3

go 1.23.0

require (
	go.etcd.io/etcd/api/v3 v3.5.21
	go.etcd.io/etcd/client/v2 v2.305.21
)

replace (
	go.etcd.io/etcd/api/v3 => ../api
	go.etcd.io/etcd/client/v2 => ../client/v2
)

replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
"""


def test_the_wrapper_module_replaces_exactly_the_staging_modules() -> None:
    wrapper = build.wrapper_go_mod(KUBERNETES_GO_MOD, "v1.34.4")
    assert "require k8s.io/kubernetes v1.34.4" in wrapper
    assert "go 1.24.0" in wrapper
    replaced = [line.strip() for line in wrapper.splitlines() if "=>" in line]
    assert replaced == [
        "k8s.io/api => k8s.io/api v0.34.4",
        "k8s.io/client-go => k8s.io/client-go v0.34.4",
        "k8s.io/sample-apiserver => k8s.io/sample-apiserver v0.34.4",
    ]
    with pytest.raises(build.BuildError, match="no staging replace"):
        build.wrapper_go_mod("module k8s.io/kubernetes\n", "v1.34.4")


def test_etcd_siblings_take_the_versions_the_server_requires() -> None:
    siblings = build.sibling_replacements(ETCD_SERVER_GO_MOD, "go.etcd.io/etcd/")
    assert siblings == ["go.etcd.io/etcd/api/v3", "go.etcd.io/etcd/client/v2"]
    assert build.required_version(ETCD_SERVER_GO_MOD, "go.etcd.io/etcd/client/v2") == "v2.305.21"


def test_the_cache_lives_outside_the_repository_keyed_by_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(build.CACHE_DIR_ENV, str(tmp_path / "cache"))
    assert (
        build.binary_path("kube-apiserver", "v1.35.4")
        == tmp_path / "cache" / "v1.35.4" / "bin" / "kube-apiserver"
    )
    assert not build.is_built("v1.35.4")
    with pytest.raises(build.BuildError, match="must look like"):
        build.build("1.35", progress=lambda message: None)


@pytest.mark.kube
def test_the_apiserver_reports_the_stamped_version_and_a_warm_build_is_a_no_op(
    kube_cluster: LocalCluster, kube_apis: KubeApis
) -> None:
    version = client.VersionApi(kube_apis.api_client).get_code()
    assert version.git_version == build.KUBERNETES_VERSION
    assert (version.major, version.minor) == ("1", build.KUBERNETES_VERSION.split(".")[1])
    before = build.read_build_info()
    messages: list[str] = []
    again = build.build(progress=messages.append)
    assert before is not None and again.built_at == before.built_at and messages == []
    cache = build.binary_dir()
    assert not str(cache.resolve()).startswith(str(Path(__file__).resolve().parents[2]))


@pytest.mark.kube
def test_the_fake_nodes_keep_a_heartbeat(kube_cluster: LocalCluster, kube_apis: KubeApis) -> None:
    """KWOK renews a Lease per node: without it the node lifecycle controller marks every node
    NotReady once per grace period, and the pods it marks NotReady on the way never recover."""
    leases = client.CoordinationV1Api(kube_apis.api_client)

    def renewals() -> dict[str, object]:
        items = leases.list_namespaced_lease("kube-node-lease").items
        return {
            str(lease.metadata and lease.metadata.name): lease.spec and lease.spec.renew_time
            for lease in items
        }

    first = wait_until(lambda: renewals() if len(renewals()) == 3 else None, timeout_s=60)
    assert sorted(first) == ["kwok-node-0", "kwok-node-1", "kwok-node-2"]
    # Renewed every LeaseDuration/4 = 10 s; a minute is plenty even on a starved machine.
    wait_until(lambda: all(renewals()[name] != first[name] for name in first), timeout_s=60, interval_s=1)


@pytest.mark.kube
def test_status_and_env_commands(kube_cluster: LocalCluster) -> None:
    runner = CliRunner()
    status = runner.invoke(cluster_cli.app, ["status", "--state-dir", str(kube_cluster.state_dir), "--json"])
    assert status.exit_code == 0, status.output
    report = json.loads(status.output)
    assert report["ready"] is True and report["nodes_ready"] == 3
    assert sorted(c["name"] for c in report["components"] if c["running"]) == sorted(
        ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]
    )
    env = runner.invoke(cluster_cli.app, ["env", "--state-dir", str(kube_cluster.state_dir)])
    assert env.output.splitlines()[0] == f"export KUBECONFIG={kube_cluster.kubeconfig}"
    assert f'export PATH="{build.binary_dir()}:$PATH"' in env.output
    missing = runner.invoke(cluster_cli.app, ["env", "--state-dir", "/nonexistent/backout"])
    assert missing.exit_code == 2 and "backout cluster up" in missing.output


@pytest.mark.kube
def test_up_then_down_stops_every_process(kube_cluster: LocalCluster, tmp_path: Path) -> None:
    second = LocalCluster(tmp_path / "second")
    state = second.start(timeout_s=120)
    try:
        assert second.status().ready
        assert second.start().apiserver_url == state.apiserver_url  # already up: reused, not restarted
    finally:
        stopped = second.stop()
    assert stopped == ["kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]
    for process in state.processes:
        assert not Path(f"/proc/{process.pid}").exists() or _is_zombie(process.pid), process.name
    assert second.status().up is False


@pytest.mark.kube
def test_objects_survive_down_and_up_unless_fresh(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "restartable")
    cluster.start(timeout_s=120)
    try:
        apis = apis_from_kubeconfig(cluster.kubeconfig)
        apis.core.create_namespaced_config_map("default", {"metadata": {"name": "kept"}, "data": {"k": "v"}})
        apis.close()
        cluster.stop()
        cluster.start(timeout_s=120)
        apis = apis_from_kubeconfig(cluster.kubeconfig)
        assert apis.core.read_namespaced_config_map("kept", "default").data == {"k": "v"}
        apis.close()
        cluster.stop()
        cluster.start(timeout_s=120, fresh=True)
        apis = apis_from_kubeconfig(cluster.kubeconfig)
        names = [c.metadata.name for c in apis.core.list_namespaced_config_map("default").items]
        assert "kept" not in names
        apis.close()
    finally:
        cluster.stop()


def _is_zombie(pid: int) -> bool:
    try:
        return ") Z " in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True


def test_cache_dir_env_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(build.CACHE_DIR_ENV, raising=False)
    assert build.cache_root() == Path(os.path.expanduser("~")) / ".cache" / "backout" / "cluster"


def test_go_versions_are_compared_numerically() -> None:
    assert build.go_version_tuple("go1.26.8") == (1, 26)
    assert build.go_version_tuple("go version go1.9.7 linux/amd64") == (1, 9)
    assert build.go_version_tuple("go1.9.7") < build.MINIMUM_GO <= build.go_version_tuple("go1.24.0")
    assert build.go_version_tuple("devel") == (0, 0)
