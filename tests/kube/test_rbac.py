"""The worker's shipped RBAC (deploy/rbac/) is enough for remediation and refuses everything else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import utils
from kubernetes.client.exceptions import ApiException
from temporalio.exceptions import ApplicationError

from activities.kube import activities as kube_activities
from activities.kube import history, remediation
from activities.kube.client import KubeApis, api_message, apis_with_token
from config import Settings
from devstack.cluster.local import LocalCluster
from incidents.remediation import RemediationRequest
from tests.kube.helpers import (
    create_deployment,
    current_images,
    service_account_kubeconfig,
    service_account_token,
    set_image,
    wait_rollout,
)

pytestmark = pytest.mark.kube

RBAC_DIR = Path(__file__).resolve().parents[2] / "deploy" / "rbac"


def apply_worker_rbac(apis: KubeApis, namespaces: list[str]) -> None:
    """deploy/rbac/ as its README says: the identity once, the Role and RoleBinding per namespace."""
    documents = [yaml.safe_load_all((RBAC_DIR / "backout-worker.yaml").read_text(encoding="utf-8"))]
    template = (RBAC_DIR / "backout-worker-namespace.yaml").read_text(encoding="utf-8")
    documents += [yaml.safe_load_all(template.replace("NAMESPACE", namespace)) for namespace in namespaces]
    for document in (doc for batch in documents for doc in batch if doc):
        try:
            utils.create_from_dict(apis.api_client, document)
        except utils.FailToCreateError as exc:  # applied by an earlier test in this session
            assert all(isinstance(e, ApiException) and e.status == 409 for e in exc.api_exceptions), exc


def worker_identity(apis: KubeApis, cluster: LocalCluster) -> KubeApis:
    """A client authenticated as the backout-worker ServiceAccount."""
    state = cluster.read_state()
    assert state is not None
    return apis_with_token(
        state.apiserver_url,
        cluster.pki_dir / "ca.crt",
        service_account_token(apis, "backout", "backout-worker"),
    )


@pytest.fixture
def worker_apis(kube_apis: KubeApis, kube_cluster: LocalCluster, kube_namespace: str) -> Iterator[KubeApis]:
    """A client authenticated as the backout-worker ServiceAccount, bound only by deploy/rbac/ in the
    test's namespace."""
    apply_worker_rbac(kube_apis, [kube_namespace])
    apis = worker_identity(kube_apis, kube_cluster)
    yield apis
    apis.close()


def test_remediation_works_with_the_worker_role_and_deleting_is_refused(
    kube_apis: KubeApis, worker_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    set_image(kube_apis, kube_namespace, "web", "registry.local/web:2")
    request = RemediationRequest(
        incident_id="inc-rbac",
        operation="rollback",
        target_type="deployment",
        name="web",
        namespace=kube_namespace,
    )
    result = remediation.remediate(worker_apis, kube_settings, request)
    assert result.applied, result.message
    assert wait_rollout(worker_apis, kube_namespace, "web").outcome == "Successful"
    assert current_images(kube_apis, kube_namespace, "web") == ["registry.local/web:1"]

    # The recorder and a ConfigMap restore (history objects, the action log) work under the role too.
    kube_apis.core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "prompts"}, "data": {"p": "1"}}
    )
    assert [v.version for v in history.record_now(worker_apis, kube_namespace)] == [1]
    kube_apis.core.patch_namespaced_config_map("prompts", kube_namespace, {"data": {"p": "2"}})
    restore = request.model_copy(update={"target_type": "configmap", "name": "prompts"})
    assert remediation.remediate(worker_apis, kube_settings, restore).applied
    assert kube_apis.core.read_namespaced_config_map("prompts", kube_namespace).data == {"p": "1"}

    with pytest.raises(ApiException) as raised:
        worker_apis.apps.delete_namespaced_deployment("web", kube_namespace)
    assert raised.value.status == 403
    assert 'cannot delete resource "deployments"' in api_message(raised.value)
    assert (
        kube_apis.apps.read_namespaced_deployment("web", kube_namespace).metadata.deletion_timestamp is None
    )


def test_a_missing_permission_is_a_non_retryable_error_naming_it(
    kube_apis: KubeApis,
    kube_cluster: LocalCluster,
    kube_namespace: str,
    kube_settings: Settings,
    tmp_path: Path,
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    # The namespace's default ServiceAccount has no role at all.
    kubeconfig = service_account_kubeconfig(
        kube_apis, kube_cluster, kube_namespace, "default", tmp_path / "no-role.kubeconfig"
    )
    settings = kube_settings.model_copy(update={"kubeconfig": kubeconfig})
    request = RemediationRequest(
        incident_id="inc-403",
        operation="rollback",
        target_type="deployment",
        name="web",
        namespace=kube_namespace,
    )
    with pytest.raises(ApplicationError) as raised:
        kube_activities.remediate_now(settings, request)
    assert raised.value.non_retryable and raised.value.type == "KubeForbidden"
    assert f"system:serviceaccount:{kube_namespace}:default" in raised.value.message
    assert (
        'cannot get resource "configmaps"' in raised.value.message
        or 'cannot get resource "deployments"' in (raised.value.message)
    )
