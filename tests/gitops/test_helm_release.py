"""A Flux HelmRelease as the owner: recognised from helm-controller's labels, its chart's Git
source resolved, and suspended/resumed exactly (on the real HelmRelease CRD; helm-controller
itself is not run)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi, V1ConfigMap, V1ObjectMeta

from activities.gitops.activities import ResolveOwnerRequest
from activities.gitops.ownership import OwnershipResolver
from activities.gitops.reconcilers import FLUX_REQUESTED_AT, SUSPENDED_BY, Reconcilers
from activities.kube.client import KubeApis
from devstack.cluster.local import LocalCluster
from devstack.gitops.flux import FluxControllers, install_helm_release_crd
from incidents.gitops import ObjectRef
from tests.gitops.conftest import FluxSetup

pytestmark = [pytest.mark.kube, pytest.mark.slow]


def helm_release(name: str, namespace: str, source_kind: str, source_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "interval": "1m",
            "chart": {
                "spec": {"chart": "./charts/chat", "sourceRef": {"kind": source_kind, "name": source_name}}
            },
        },
    }


def read(custom: CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    found: Any = custom.get_namespaced_custom_object(
        "helm.toolkit.fluxcd.io", "v2", namespace, "helmreleases", name
    )
    return dict(found)


def test_a_helm_release_is_resolved_and_suspended_exactly(
    flux: FluxControllers,
    kube_cluster: LocalCluster,
    flux_setup: FluxSetup,
    make_activities: Any,
    kube_apis: KubeApis,
) -> None:
    install_helm_release_crd(kube_cluster.kubeconfig)
    namespace = flux_setup.namespace
    flux_setup.fleet.commit(
        {"charts/chat/Chart.yaml": "apiVersion: v2\nname: chat\nversion: 0.1.0\n"}, "chart"
    )
    flux_setup.create()
    custom = CustomObjectsApi(kube_apis.api_client)
    custom.create_namespaced_custom_object(
        "helm.toolkit.fluxcd.io",
        "v2",
        namespace,
        "helmreleases",
        helm_release("chat", namespace, "GitRepository", "fleet"),
    )
    custom.create_namespaced_custom_object(
        "helm.toolkit.fluxcd.io",
        "v2",
        namespace,
        "helmreleases",
        helm_release("other", namespace, "HelmRepository", "charts"),
    )
    labels = {"helm.toolkit.fluxcd.io/name": "chat", "helm.toolkit.fluxcd.io/namespace": namespace}
    kube_apis.core.create_namespaced_config_map(
        namespace, V1ConfigMap(metadata=V1ObjectMeta(name="chat-values", labels=labels), data={"k": "v"})
    )
    activities = make_activities()
    target = ObjectRef(api_version="v1", kind="ConfigMap", name="chat-values", namespace=namespace)
    owned = activities.resolve_owner_sync(ResolveOwnerRequest(object=target))
    assert owned.ownership is not None and owned.ownership.source is not None
    assert owned.ownership.reconciler.describe() == f"HelmRelease/{namespace}/chat"
    assert (owned.ownership.source.repo_url, owned.ownership.source.branch, owned.ownership.source.path) == (
        flux_setup.fleet.url,
        "main",
        "charts/chat",
    )

    reconcilers = Reconcilers(custom)
    suspended = reconcilers.suspend(owned.ownership.reconciler, "inc-helm-1")
    assert suspended.record is not None and not suspended.record.already_suspended
    release = read(custom, namespace, "chat")
    assert (
        release["spec"]["suspend"] is True
        and release["metadata"]["annotations"][SUSPENDED_BY] == "inc-helm-1"
    )
    assert not read(custom, namespace, "other")["spec"].get("suspend"), "only the owner is suspended"
    assert flux_setup.kustomization()["spec"].get("suspend") is not True
    resumed = reconcilers.resume(suspended.record)
    assert resumed.resumed
    release = read(custom, namespace, "chat")
    assert release["spec"]["suspend"] is False
    assert (
        SUSPENDED_BY not in release["metadata"]["annotations"]
        and FLUX_REQUESTED_AT in release["metadata"]["annotations"]
    )

    other_labels = {"helm.toolkit.fluxcd.io/name": "other", "helm.toolkit.fluxcd.io/namespace": namespace}
    other = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": namespace, "labels": other_labels},
    }
    unresolved = OwnershipResolver(custom).resolve(other)
    assert unresolved is not None and unresolved.source is None
    assert unresolved.unresolved_reason is not None and "HelmRepository" in unresolved.unresolved_reason
