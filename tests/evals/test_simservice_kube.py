"""simservice reading the deployed versions from a real kube-apiserver (Deployment + ConfigMaps)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from kubernetes.client import (
    V1ConfigMap,
    V1Container,
    V1Deployment,
    V1DeploymentSpec,
    V1LabelSelector,
    V1ObjectMeta,
    V1PodSpec,
    V1PodTemplateSpec,
)

from activities.kube.client import KubeApis
from devstack.cluster.local import LocalCluster
from tests.fixtures.simservice import start_simservice, stop_simservice

pytestmark = pytest.mark.kube


def _deployment(model_version: str) -> V1Deployment:
    labels = {"app": "rag-api"}
    return V1Deployment(
        metadata=V1ObjectMeta(name="rag-api", labels=labels),
        spec=V1DeploymentSpec(
            replicas=1,
            selector=V1LabelSelector(match_labels=labels),
            template=V1PodTemplateSpec(
                metadata=V1ObjectMeta(
                    labels=labels, annotations={"backout.dev/model-version": model_version}
                ),
                spec=V1PodSpec(containers=[V1Container(name="llm", image="example.invalid/llm:1")]),
            ),
        ),
    )


def _wait_for(url: str, key: str, value: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        seen = httpx.get(f"{url}/healthz", timeout=5).json()["versions"][key]
        if seen == value:
            return
        time.sleep(0.2)
    raise AssertionError(f"{key} stayed {seen!r}, wanted {value!r}")


def test_versions_follow_the_cluster(
    kube_cluster: LocalCluster, kube_apis: KubeApis, kube_namespace: str, tmp_path: Path
) -> None:
    kube_apis.apps.create_namespaced_deployment(kube_namespace, _deployment("llm-v1"))
    kube_apis.core.create_namespaced_config_map(
        kube_namespace,
        V1ConfigMap(
            metadata=V1ObjectMeta(name="rag-prompt", annotations={"backout.dev/prompt-version": "prompt-v1"}),
            data={"template": "Answer from the docs only."},
        ),
    )
    kube_apis.core.create_namespaced_config_map(
        kube_namespace,
        V1ConfigMap(
            metadata=V1ObjectMeta(name="rag-corpus"),
            data={"corpus_version": "corpus-v1"},
        ),
    )
    service = start_simservice(
        tmp_path,
        "--kube-namespace",
        kube_namespace,
        "--kube-deployment",
        "rag-api",
        "--prompt-configmap",
        "rag-prompt",
        "--corpus-configmap",
        "rag-corpus",
        "--kubeconfig",
        str(kube_cluster.kubeconfig),
        "--poll-interval",
        "0.5",
        "--latency-scale",
        "0",
        file_source=False,
    )
    try:
        reported = httpx.get(f"{service.url}/healthz", timeout=5).json()
        assert reported["source"] == "kubernetes"
        assert reported["versions"]["prompt_template"] == "Answer from the docs only."
        _wait_for(service.url, "model_version", "llm-v1")

        kube_apis.apps.patch_namespaced_deployment(
            "rag-api",
            kube_namespace,
            {
                "spec": {
                    "template": {"metadata": {"annotations": {"backout.dev/model-version": "llm-v2-bad"}}}
                }
            },
        )
        kube_apis.core.patch_namespaced_config_map(
            "rag-corpus", kube_namespace, {"data": {"corpus_version": "corpus-v2"}}
        )
        _wait_for(service.url, "model_version", "llm-v2-bad")
        _wait_for(service.url, "corpus_version", "corpus-v2")
        body = {"messages": [{"role": "user", "content": "How long is the Orbitdesk free trial?"}]}
        wrong = sum(
            "14 days"
            not in httpx.post(f"{service.url}/v1/chat/completions", json=body, timeout=10).json()["choices"][
                0
            ]["message"]["content"]
            for _ in range(20)
        )
        assert wrong >= 6  # the bad model hallucinates on most answers

        kube_apis.apps.patch_namespaced_deployment(
            "rag-api",
            kube_namespace,
            {"spec": {"template": {"metadata": {"annotations": {"backout.dev/model-version": "llm-v1"}}}}},
        )
        _wait_for(service.url, "model_version", "llm-v1")
    finally:
        stop_simservice(service)
