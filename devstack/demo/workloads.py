"""The simulated AI service as Kubernetes objects: gateway -> rag-api -> (retriever, llm), prompt and corpus ConfigMaps."""

from __future__ import annotations

import time

from kubernetes.client import (
    V1ConfigMap,
    V1Container,
    V1Deployment,
    V1DeploymentSpec,
    V1LabelSelector,
    V1Namespace,
    V1ObjectMeta,
    V1PodSpec,
    V1PodTemplateSpec,
)
from kubernetes.client.exceptions import ApiException

from activities.kube.client import KubeApis

NAMESPACE = "demo"
PROMPT_CONFIGMAP = "rag-prompts"
CORPUS_CONFIGMAP = "retriever-corpus"
LLM_DEPLOYMENT = "llm"
GOOD_PROMPT = (
    "You are the Orbitdesk documentation assistant. Answer from the retrieved passage only; "
    "quote exact product names and numbers."
)
BAD_PROMPT = "You are a helpful assistant. Answer briefly from what you know."


def _deployment(
    name: str, image: str, calls: list[str], annotations: dict[str, str] | None = None
) -> V1Deployment:
    labels = {"app": name, "backout.dev/service": name}
    return V1Deployment(
        metadata=V1ObjectMeta(
            name=name,
            labels=labels,
            annotations={"backout.dev/calls": ",".join(calls), "backout.dev/team": "ml-platform"},
        ),
        spec=V1DeploymentSpec(
            replicas=2,
            selector=V1LabelSelector(match_labels={"app": name}),
            progress_deadline_seconds=60,
            template=V1PodTemplateSpec(
                metadata=V1ObjectMeta(labels=labels, annotations=annotations or {}),
                spec=V1PodSpec(containers=[V1Container(name=name, image=image)]),
            ),
        ),
    )


def service_objects() -> tuple[list[V1Deployment], list[V1ConfigMap]]:
    deployments = [
        _deployment("gateway", "registry.local/gateway:1.4.0", ["rag-api"]),
        _deployment("rag-api", "registry.local/rag-api:2.3.1", ["retriever", "llm"]),
        _deployment("retriever", "registry.local/retriever:0.9.2", []),
        _deployment(LLM_DEPLOYMENT, "registry.local/vllm:0.6.3", [], {"backout.dev/model-version": "llm-v1"}),
    ]
    configmaps = [
        V1ConfigMap(
            metadata=V1ObjectMeta(
                name=PROMPT_CONFIGMAP,
                labels={"app": "rag-api", "backout.dev/service": "rag-api"},
                annotations={"backout.dev/prompt-version": "prompt-v1", "backout.dev/service": "rag-api"},
            ),
            data={"prompt_version": "prompt-v1", "template": GOOD_PROMPT},
        ),
        V1ConfigMap(
            metadata=V1ObjectMeta(
                name=CORPUS_CONFIGMAP,
                labels={"app": "retriever", "backout.dev/service": "retriever"},
                annotations={
                    "backout.dev/corpus-version": "corpus-2026-11-20",
                    "backout.dev/service": "retriever",
                },
            ),
            data={"corpus_version": "corpus-2026-11-20", "index": "s3://corpora/orbitdesk/2026-11-20"},
        ),
    ]
    return deployments, configmaps


def recreate_namespace(apis: KubeApis, namespace: str = NAMESPACE, timeout_s: float = 60.0) -> None:
    """A clean namespace whose default ServiceAccount exists, so pods are admitted."""
    try:
        apis.core.delete_namespace(namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            apis.core.create_namespace(V1Namespace(metadata=V1ObjectMeta(name=namespace)))
            break
        except ApiException as exc:
            if exc.status != 409 or time.monotonic() > deadline:  # 409 while the old one terminates
                raise
            time.sleep(0.5)
    while True:
        try:
            apis.core.read_namespaced_service_account("default", namespace)
            return
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def deploy(apis: KubeApis, namespace: str = NAMESPACE) -> None:
    deployments, configmaps = service_objects()
    for configmap in configmaps:
        apis.core.create_namespaced_config_map(namespace, configmap)
    for deployment in deployments:
        apis.apps.create_namespaced_deployment(namespace, deployment)


def wait_available(apis: KubeApis, namespace: str = NAMESPACE, timeout_s: float = 120.0) -> None:
    """Every Deployment rolled out on the fake nodes (updated == available == desired)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pending = []
        for item in apis.apps.list_namespaced_deployment(namespace).items:
            status = item.status
            want = item.spec.replicas or 0
            done = (
                (status.observed_generation or 0) >= (item.metadata.generation or 0)
                and (status.updated_replicas or 0) == want
                and (status.available_replicas or 0) == want
            )
            if not done:
                pending.append(item.metadata.name)
        if not pending:
            return
        time.sleep(0.5)
    raise TimeoutError(f"deployments not available after {timeout_s}s: {', '.join(pending)}")


def set_prompt(apis: KubeApis, version: str, template: str, namespace: str = NAMESPACE) -> None:
    patch = {
        "metadata": {"annotations": {"backout.dev/prompt-version": version}},
        "data": {"prompt_version": version, "template": template},
    }
    apis.core.patch_namespaced_config_map(PROMPT_CONFIGMAP, namespace, patch)


def set_corpus(apis: KubeApis, version: str, namespace: str = NAMESPACE) -> None:
    patch = {
        "metadata": {"annotations": {"backout.dev/corpus-version": version}},
        "data": {
            "corpus_version": version,
            "index": f"s3://corpora/orbitdesk/{version.removeprefix('corpus-')}",
        },
    }
    apis.core.patch_namespaced_config_map(CORPUS_CONFIGMAP, namespace, patch)


def set_image(apis: KubeApis, deployment: str, image: str, cause: str, namespace: str = NAMESPACE) -> None:
    patch = {
        "metadata": {"annotations": {"kubernetes.io/change-cause": cause}},
        "spec": {"template": {"spec": {"containers": [{"name": deployment, "image": image}]}}},
    }
    apis.apps.patch_namespaced_deployment(deployment, namespace, patch)


def set_model(apis: KubeApis, version: str, cause: str, namespace: str = NAMESPACE) -> None:
    patch = {
        "metadata": {"annotations": {"kubernetes.io/change-cause": cause}},
        "spec": {"template": {"metadata": {"annotations": {"backout.dev/model-version": version}}}},
    }
    apis.apps.patch_namespaced_deployment(LLM_DEPLOYMENT, namespace, patch)


class ClusterChanges:
    """The demo's three changes written straight to the cluster (`backout demo --gitops` commits
    them to Git instead: devstack/demo/gitops.py). Each returns the commit it made: none here."""

    def __init__(self, apis: KubeApis, namespace: str = NAMESPACE) -> None:
        self.apis = apis
        self.namespace = namespace

    def set_corpus(self, version: str) -> str:
        set_corpus(self.apis, version, self.namespace)
        return ""

    def set_prompt(self, version: str, template: str) -> str:
        set_prompt(self.apis, version, template, self.namespace)
        return ""

    def set_image(self, deployment: str, image: str, cause: str) -> str:
        set_image(self.apis, deployment, image, cause, self.namespace)
        return ""
