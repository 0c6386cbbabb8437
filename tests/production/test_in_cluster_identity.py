"""In-cluster identity: the worker, given only what a pod of the chart has (the ServiceAccount token
and CA at the mounted path, KUBERNETES_SERVICE_HOST/PORT, no kubeconfig), acts as the chart's
ServiceAccount on the local control plane. Its rollbacks in allowedNamespaces succeed; writes
anywhere else are refused by the apiserver (403) even when backout's own allow list would let them
through."""

from __future__ import annotations

import asyncio
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from kubernetes.client import V1Namespace, V1ObjectMeta
from kubernetes.client.exceptions import ApiException

from activities.kube.client import SERVICE_ACCOUNT_DIR_ENV, KubeApis, apis_in_cluster, kube_configured
from config import Settings
from devstack.cluster.local import LocalCluster
from devstack.temporal_sql import TemporalSqlState
from tests.kube.helpers import create_deployment, current_images, service_account_token, set_image, wait_until
from tests.production.conftest import CHART, VALUES_DIR, run
from tests.production.test_temporal_sql import (
    drill_settings,
    run_drill,
    start_worker,
    stop_worker,
    worker_environment,
)
from worker.temporal_client import connect

pytestmark = [pytest.mark.temporal, pytest.mark.kube, pytest.mark.slow, pytest.mark.timeout(900)]

RELEASE = "backout"


def _namespace(apis: KubeApis, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    apis.core.create_namespace(V1Namespace(metadata=V1ObjectMeta(name=name)))
    return name


@pytest.fixture
def chart_identity(
    helm_binary: Path, kubectl_binary: Path, kube_cluster: LocalCluster, kube_apis: KubeApis, tmp_path: Path
) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """The chart's ServiceAccount and RBAC applied for one allowed namespace; yields that namespace,
    a folder laid out like the pod's mounted ServiceAccount, and the in-cluster environment."""
    release_ns, allowed = _namespace(kube_apis, "bo-rel"), _namespace(kube_apis, "bo-app")
    rendered = run(
        [helm_binary, "template", RELEASE, CHART, "--namespace", release_ns,
         "--values", VALUES_DIR / "required.yaml", "--set-json", f'allowedNamespaces=["{allowed}"]',
         "--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml"]
    ).stdout  # fmt: skip
    manifest = tmp_path / "identity.yaml"
    manifest.write_text(rendered, encoding="utf-8")
    run([kubectl_binary, "--kubeconfig", kube_cluster.kubeconfig, "apply", "-f", manifest])
    mounted = tmp_path / "serviceaccount"
    mounted.mkdir()
    (mounted / "token").write_text(
        service_account_token(kube_apis, release_ns, f"{RELEASE}-worker"), encoding="utf-8"
    )
    shutil.copyfile(kube_cluster.pki_dir / "ca.crt", mounted / "ca.crt")
    (mounted / "namespace").write_text(release_ns, encoding="utf-8")
    state = kube_cluster.read_state()
    assert state is not None
    url = urlsplit(state.apiserver_url)
    env = {
        "KUBERNETES_SERVICE_HOST": str(url.hostname),
        "KUBERNETES_SERVICE_PORT": str(url.port),
        SERVICE_ACCOUNT_DIR_ENV: str(mounted),
    }
    try:
        yield allowed, mounted, env
    finally:
        run([kubectl_binary, "--kubeconfig", kube_cluster.kubeconfig, "delete", "-f", manifest,
             "--ignore-not-found"])  # fmt: skip


def test_the_mounted_service_account_is_used_without_a_kubeconfig(
    chart_identity: tuple[str, Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed, mounted, env = chart_identity
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("BACKOUT_KUBECONFIG", raising=False)
    assert not kube_configured(Settings())
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert kube_configured(Settings())
    apis = apis_in_cluster(mounted)
    try:
        assert apis.apps.list_namespaced_deployment(allowed).items == []
        with pytest.raises(ApiException) as unread:  # by default backout reads only where it may act
            apis.apps.list_namespaced_deployment("kube-system")
        assert unread.value.status == 403
        with pytest.raises(ApiException) as refused:
            apis.core.create_namespaced_secret("kube-system", {"metadata": {"name": "planted"}, "data": {}})
        assert refused.value.status == 403
        assert f"system:serviceaccount:{mounted.joinpath('namespace').read_text()}:{RELEASE}-worker" in str(
            refused.value.body
        )
    finally:
        apis.close()


async def test_the_worker_as_the_charts_service_account_rolls_back_only_where_allowed(
    chart_identity: tuple[str, Path, dict[str, str]],
    production_temporal: TemporalSqlState,
    kube_apis: KubeApis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    allowed, mounted, env = chart_identity
    outside = _namespace(kube_apis, "bo-out")
    for namespace in (allowed, outside):
        await asyncio.to_thread(create_deployment, kube_apis, namespace, "web", "web:v1", replicas=1)
        await asyncio.to_thread(set_image, kube_apis, namespace, "web", "web:v2")
    kube_apis.core.create_namespaced_config_map(
        allowed, {"metadata": {"name": "prompts"}, "data": {"p": "1"}}
    )
    # backout's own allow list names both namespaces: only the apiserver stands between it and `outside`.
    settings = drill_settings(production_temporal, tmp_path / "state", allowed_namespaces=[allowed, outside])
    worker = start_worker(settings, env)
    try:
        client = await connect(settings, attempts=10)
        inside_view = await run_drill(client, settings, "web", allowed)
        outside_view = await run_drill(client, settings, "web", outside)
        # The history recorder ran as the ServiceAccount too: it copied the ConfigMap it may read.
        history = await asyncio.to_thread(
            wait_until,
            lambda: [
                cm.metadata.name
                for cm in kube_apis.core.list_namespaced_config_map(allowed).items
                if cm.metadata.name.startswith("backout-history.cm.prompts.")
            ],
            30.0,
        )
    finally:
        stop_worker(worker)
    log = (settings.state_dir / "worker.log").read_text(encoding="utf-8", errors="replace")
    assert inside_view.state == "recovered", ([e.message for e in inside_view.timeline], log[-3000:])
    assert [r.outcome for r in inside_view.actions if r.action == "rollback"] == ["Successful"]
    assert current_images(kube_apis, allowed, "web") == ["web:v1"]
    assert history == ["backout-history.cm.prompts.v1"]

    # Outside, the apiserver refused the ServiceAccount at once (reading the namespace's Secrets for
    # the change ledger): no candidate, no action, nothing changed.
    assert not [r for r in outside_view.actions if r.outcome == "Successful" and r.action == "rollback"]
    outside_timeline = " ".join(e.message for e in outside_view.timeline)
    assert "403" in outside_timeline and "forbidden" in outside_timeline, outside_timeline
    assert current_images(kube_apis, outside, "web") == ["web:v2"], "the apiserver let a write through"

    # backout's own rollback code (the worker's remediate activity, run by the CLI) with the same
    # identity, told `outside` is allowed: its write is refused by the apiserver.
    cli = run(
        [sys.executable, "-m", "worker.cli", "rollback", "deployment/web", "-n", outside],
        check=False,
        env=worker_environment(settings, env),
    )
    assert cli.returncode != 0, cli.stdout
    # With the default RBAC the ServiceAccount may not even read there: the first call (the
    # namespace's action log) is refused, before any write is tried.
    refusal = cli.stdout + cli.stderr
    assert "is forbidden" in refusal and f'in the namespace "{outside}"' in refusal, refusal
    assert f"system:serviceaccount:{mounted.joinpath('namespace').read_text()}:{RELEASE}-worker" in refusal
    assert current_images(kube_apis, outside, "web") == ["web:v2"]

    # The same token, straight to the apiserver: writes outside allowedNamespaces are 403.
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    apis = apis_in_cluster(mounted)
    try:
        for attempt in (
            lambda: apis.apps.patch_namespaced_deployment("web", outside, {"spec": {"paused": True}}),
            lambda: apis.core.create_namespaced_config_map(outside, {"metadata": {"name": "planted"}}),
            lambda: apis.core.create_namespaced_secret("kube-system", {"metadata": {"name": "planted"}}),
            lambda: apis.core.read_namespaced_secret("prompts", outside),
            lambda: apis.apps.delete_namespaced_deployment("web", allowed),
        ):
            with pytest.raises(ApiException) as raised:
                attempt()
            assert raised.value.status == 403
    finally:
        apis.close()
