"""Argo CD's Application API, on its real CRD (vendored from the argo-cd v3 module) in the
local control plane: auto-sync off and back on as documented, sync status, ownership from the
tracking annotation, and the culprit commit read from the Application's Git source.

The Application status below is written by the test in the shape Argo CD's controller writes
it (the CRD has no status subresource); see the report of issue 16 for the controller itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi, V1ConfigMap, V1ObjectMeta

from activities.gitops.activities import FindCulpritRequest, GitOpsActivities, ResolveOwnerRequest
from activities.gitops.ownership import ARGOCD_TRACKING_ID, OwnershipResolver
from activities.gitops.reconcilers import ORIGINAL_AUTOMATED, SUSPENDED_BY, Reconcilers
from activities.kube.client import KubeApis
from devstack.cluster.local import LocalCluster
from devstack.gitops.argocd import install_crds
from incidents.gitops import ObjectRef, ReconcilerRef
from tests.gitops.conftest import Fleet, configmap_manifest

pytestmark = pytest.mark.kube

AUTOMATED = {"prune": True, "selfHeal": True}


@pytest.fixture(scope="session")
def argocd_crds(kube_cluster: LocalCluster) -> Iterator[list[str]]:
    yield install_crds(kube_cluster.kubeconfig)


def application(name: str, namespace: str, repo_url: str, revision: str | None = None) -> dict[str, Any]:
    app: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo_url, "path": "apps", "targetRevision": "main"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
            "syncPolicy": {"automated": dict(AUTOMATED), "syncOptions": ["ServerSideApply=true"]},
        },
    }
    if revision:
        app["status"] = {
            "sync": {
                "status": "Synced",
                "revision": revision,
                "comparedTo": {"source": app["spec"]["source"], "destination": app["spec"]["destination"]},
            },
            "health": {"status": "Healthy"},
        }
    return app


def create_app(apis: KubeApis, body: dict[str, Any]) -> None:
    CustomObjectsApi(apis.api_client).create_namespaced_custom_object(
        "argoproj.io", "v1alpha1", body["metadata"]["namespace"], "applications", body
    )


def read_app(apis: KubeApis, namespace: str, name: str) -> dict[str, Any]:
    found: Any = CustomObjectsApi(apis.api_client).get_namespaced_custom_object(
        "argoproj.io", "v1alpha1", namespace, "applications", name
    )
    return found


def test_the_vendored_crds_are_the_real_ones(argocd_crds: list[str]) -> None:
    assert "customresourcedefinition.apiextensions.k8s.io/applications.argoproj.io" in argocd_crds


def test_auto_sync_off_and_back_on_exactly_as_it_was(
    argocd_crds: list[str], kube_apis: KubeApis, kube_namespace: str
) -> None:
    create_app(kube_apis, application("chat", kube_namespace, "http://127.0.0.1:1/fleet.git"))
    ref = ReconcilerRef(
        tool="argocd", kind="Application", name="chat", namespace=kube_namespace, evidence="test"
    )
    reconcilers = Reconcilers(CustomObjectsApi(kube_apis.api_client))

    suspended = reconcilers.suspend(ref, "inc-1")
    assert suspended.outcome == "Successful" and suspended.record is not None
    assert suspended.record.original_automated == AUTOMATED and not suspended.record.already_suspended
    app = read_app(kube_apis, kube_namespace, "chat")
    assert "automated" not in app["spec"]["syncPolicy"]
    assert app["spec"]["syncPolicy"]["syncOptions"] == ["ServerSideApply=true"]
    assert app["metadata"]["annotations"][SUSPENDED_BY] == "inc-1"
    assert reconcilers.status(ref).suspended

    again = reconcilers.suspend(ref, "inc-1")
    assert (
        again.outcome == "Successful"
        and again.record is not None
        and again.record.original_automated == AUTOMATED
    )
    other = reconcilers.suspend(ref, "inc-2")
    assert other.outcome == "Failed" and "inc-1" in other.message

    assert (
        reconcilers.resume(suspended.record.model_copy(update={"incident_id": "inc-2"})).outcome == "Failed"
    )
    resumed = reconcilers.resume(suspended.record)
    assert resumed.outcome == "Successful" and resumed.resumed
    app = read_app(kube_apis, kube_namespace, "chat")
    assert app["spec"]["syncPolicy"]["automated"] == AUTOMATED
    annotations = app["metadata"].get("annotations") or {}
    assert SUSPENDED_BY not in annotations and ORIGINAL_AUTOMATED not in annotations
    assert annotations["argocd.argoproj.io/refresh"] == "normal"
    assert not reconcilers.status(ref).suspended


def test_an_application_without_auto_sync_is_left_alone(
    argocd_crds: list[str], kube_apis: KubeApis, kube_namespace: str
) -> None:
    body = application("manual", kube_namespace, "http://127.0.0.1:1/fleet.git")
    del body["spec"]["syncPolicy"]["automated"]
    create_app(kube_apis, body)
    ref = ReconcilerRef(
        tool="argocd", kind="Application", name="manual", namespace=kube_namespace, evidence="test"
    )
    reconcilers = Reconcilers(CustomObjectsApi(kube_apis.api_client))
    result = reconcilers.suspend(ref, "inc-1")
    assert result.record is not None and result.record.already_suspended
    assert reconcilers.resume(result.record).resumed is False
    assert "automated" not in read_app(kube_apis, kube_namespace, "manual")["spec"]["syncPolicy"]


def test_owner_and_culprit_from_the_tracking_annotation(
    argocd_crds: list[str],
    kube_apis: KubeApis,
    kube_namespace: str,
    fleet: Fleet,
    make_activities: Callable[..., GitOpsActivities],
) -> None:
    fleet.commit(
        {"apps/prompt.yaml": configmap_manifest("prompt-config", kube_namespace, {"prompt": "ground"})},
        "first",
    )
    culprit = fleet.commit(
        {"apps/prompt.yaml": configmap_manifest("prompt-config", kube_namespace, {"prompt": "improvise"})},
        "let it improvise",
        author=("Casey Culprit", "casey@example.com"),
    )
    create_app(kube_apis, application("chat", kube_namespace, fleet.url, revision=culprit))
    kube_apis.core.create_namespaced_config_map(
        kube_namespace,
        V1ConfigMap(
            metadata=V1ObjectMeta(
                name="prompt-config",
                annotations={ARGOCD_TRACKING_ID: f"chat:/ConfigMap:{kube_namespace}/prompt-config"},
            ),
            data={"prompt": "improvise"},
        ),
    )
    activities = make_activities()
    activities.config.argocd_namespaces = [kube_namespace]
    target = ObjectRef(api_version="v1", kind="ConfigMap", name="prompt-config", namespace=kube_namespace)
    owned = activities.resolve_owner_sync(ResolveOwnerRequest(object=target))
    assert owned.ownership is not None
    assert owned.ownership.reconciler.describe() == f"Application/{kube_namespace}/chat"
    assert owned.ownership.source is not None
    assert owned.ownership.source.repo_url == fleet.url
    assert (owned.ownership.source.branch, owned.ownership.source.path, owned.ownership.source.revision) == (
        "main",
        "apps",
        culprit,
    )

    found = activities.find_culprit_sync(FindCulpritRequest(ownership=owned.ownership))
    assert found.outcome == "Successful" and found.culprit is not None
    assert (found.culprit.commit.sha, found.culprit.commit.author_name) == (culprit, "Casey Culprit")
    assert found.culprit.matches_live is True

    status = Reconcilers(CustomObjectsApi(kube_apis.api_client)).status(owned.ownership.reconciler)
    assert (status.sync_status, status.applied_revision, status.suspended) == ("Synced", culprit, False)


def test_a_copied_tracking_id_or_a_helm_label_is_not_argo_cd(
    argocd_crds: list[str], kube_apis: KubeApis, kube_namespace: str
) -> None:
    resolver = OwnershipResolver(CustomObjectsApi(kube_apis.api_client), [kube_namespace])
    copied = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "copy",
            "namespace": kube_namespace,
            "annotations": {ARGOCD_TRACKING_ID: f"chat:/ConfigMap:{kube_namespace}/original"},
        },
    }
    assert resolver.resolve(copied) is None
    helm_labelled = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "x",
            "namespace": kube_namespace,
            "labels": {"app.kubernetes.io/instance": "my-release"},
        },
    }
    assert resolver.resolve(helm_labelled) is None


def test_apps_in_any_namespace_are_found_by_their_qualified_name(
    argocd_crds: list[str], kube_apis: KubeApis, kube_namespace: str
) -> None:
    create_app(
        kube_apis, application("chat", kube_namespace, "http://127.0.0.1:1/fleet.git", revision="a" * 40)
    )
    resolver = OwnershipResolver(CustomObjectsApi(kube_apis.api_client), ["argocd"])
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "api",
            "namespace": "prod",
            "annotations": {ARGOCD_TRACKING_ID: f"{kube_namespace}_chat:apps/Deployment:prod/api"},
        },
    }
    owned = resolver.resolve(obj)
    assert (
        owned is not None and owned.reconciler.namespace == kube_namespace and owned.reconciler.name == "chat"
    )
    assert owned.source is not None and owned.source.revision == "a" * 40
