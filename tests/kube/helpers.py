"""Building blocks for the Kubernetes tests: workloads on the KWOK nodes, edits, waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from activities.kube import verify
from activities.kube.client import KubeApis
from devstack.cluster.kubeconfig import write_kubeconfig
from devstack.cluster.local import LocalCluster
from incidents.remediation import VerificationResult, VerifyRequest


def deployment_body(name: str, image: str, replicas: int = 2, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
            **spec,
        },
    }


def create_deployment(apis: KubeApis, namespace: str, name: str, image: str, **spec: Any) -> None:
    apis.apps.create_namespaced_deployment(namespace, deployment_body(name, image, **spec))
    assert_rolled_out(apis, namespace, name)


def set_image(apis: KubeApis, namespace: str, name: str, image: str, cause: str | None = None) -> None:
    """Like `kubectl set image` with a change-cause, then wait for the rollout."""
    body: dict[str, Any] = {"spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}}}
    if cause:
        body["metadata"] = {"annotations": {"kubernetes.io/change-cause": cause}}
    apis.apps.patch_namespaced_deployment(name, namespace, body)
    assert_rolled_out(apis, namespace, name)


def patch_template_annotation(apis: KubeApis, namespace: str, name: str, key: str, value: str) -> None:
    body = {"spec": {"template": {"metadata": {"annotations": {key: value}}}}}
    apis.apps.patch_namespaced_deployment(name, namespace, body)
    assert_rolled_out(apis, namespace, name)


def wait_rollout(apis: KubeApis, namespace: str, name: str, timeout_s: int = 60) -> VerificationResult:
    request = VerifyRequest(target_type="deployment", name=name, namespace=namespace, timeout_s=timeout_s)
    return verify.verify(apis, request)


def assert_rolled_out(apis: KubeApis, namespace: str, name: str) -> None:
    result = wait_rollout(apis, namespace, name)
    assert result.outcome == "Successful", result.message


def current_images(apis: KubeApis, namespace: str, name: str) -> list[str]:
    deployment = apis.apps.read_namespaced_deployment(name, namespace)
    return [container.image for container in deployment.spec.template.spec.containers]


def running_pod_images(apis: KubeApis, namespace: str, app: str) -> dict[str, str]:
    """pod name -> image, for pods that are Ready on a fake node and not terminating."""
    ready: dict[str, str] = {}
    for pod in apis.core.list_namespaced_pod(namespace, label_selector=f"app={app}").items:
        conditions = {c.type: c.status for c in pod.status.conditions or []}
        if pod.metadata.deletion_timestamp is None and conditions.get("Ready") == "True":
            assert pod.spec.node_name and pod.spec.node_name.startswith("kwok-node-"), pod.spec.node_name
            ready[pod.metadata.name] = pod.spec.containers[0].image
    return ready


def wait_until(predicate: Any, timeout_s: float = 20.0, interval_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)


def service_account_token(apis: KubeApis, namespace: str, service_account: str) -> str:
    """A short-lived token of a ServiceAccount, as a pod running under it would hold."""
    body = {"spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 600}}
    response = apis.core.create_namespaced_service_account_token(service_account, namespace, body)
    return str(response.status.token)


def service_account_kubeconfig(
    apis: KubeApis, cluster: LocalCluster, namespace: str, service_account: str, path: Path
) -> Path:
    """A kubeconfig at `path` that authenticates to `cluster` as the ServiceAccount."""
    state = cluster.read_state()
    assert state is not None
    token = service_account_token(apis, namespace, service_account)
    write_kubeconfig(path, state.apiserver_url, cluster.pki_dir / "ca.crt", None, None, token=token)
    return path


def first_call_meets(barrier: threading.Barrier, call: Callable[..., Any]) -> Callable[..., Any]:
    """`call`, whose first call waits at `barrier` for the other parties' first calls: reads that
    are made one after the other never get past it (BrokenBarrierError at its timeout)."""
    first = threading.Event()

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not first.is_set():
            first.set()
            barrier.wait()
        return call(*args, **kwargs)

    return wrapper
