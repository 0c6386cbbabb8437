"""remediate's reads before its write: the action log and the target at once, a fresh read after a 409.

A stand-in apiserver (no cluster): these tests pin down the order and the number of reads, which
a real cluster would hide.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import (
    V1Deployment,
    V1DeploymentSpec,
    V1LabelSelector,
    V1ObjectMeta,
    V1PodTemplateSpec,
)
from kubernetes.client.exceptions import ApiException

from activities.kube import remediation
from activities.kube.client import KubeApis
from activities.kube.guards import ACTION_LOG_NAME
from config import Settings
from incidents.remediation import RemediationRequest

NAMESPACE = "shop"


class FakeCluster:
    """One Deployment `web` with 2 replicas and no action log yet; `patch_conflicts` PATCHes are
    answered 409 (someone else wrote in between) before one is accepted."""

    def __init__(self, patch_conflicts: int = 0, meet: threading.Barrier | None = None) -> None:
        self.patch_conflicts = patch_conflicts
        self.meet = meet  # the first action-log read and the first Deployment read wait for each other
        self.resource_version = 1
        self.deployment_reads = 0
        self.log_reads = 0
        self.patched_versions: list[str] = []
        self.core = self
        self.apps = self
        self.api_client = self

    def _met(self) -> None:
        if self.meet is not None and self.log_reads + self.deployment_reads <= 2:
            self.meet.wait()

    def read_namespaced_config_map(self, name: str, namespace: str) -> Any:
        assert name == ACTION_LOG_NAME
        self.log_reads += 1
        self._met()
        raise ApiException(status=404, reason="Not Found")

    def create_namespaced_config_map(self, namespace: str, body: Any) -> Any:
        return body

    def read_namespaced_deployment(self, name: str, namespace: str) -> V1Deployment:
        self.deployment_reads += 1
        self._met()
        self.resource_version += 1  # every read sees a newer object (the writer that conflicted)
        return V1Deployment(
            metadata=V1ObjectMeta(
                name=name, namespace=namespace, resource_version=str(self.resource_version), annotations={}
            ),
            spec=V1DeploymentSpec(
                replicas=2,
                selector=V1LabelSelector(match_labels={"app": name}),
                template=V1PodTemplateSpec(),
            ),
        )

    def patch_namespaced_deployment(self, name: str, namespace: str, body: Any, dry_run: Any = None) -> Any:
        self.patched_versions.append(body["metadata"]["resourceVersion"])
        if len(self.patched_versions) <= self.patch_conflicts:
            raise ApiException(status=409, reason="Conflict")
        updated = self.read_namespaced_deployment(name, namespace)
        updated.spec.replicas = body["spec"]["replicas"]
        return updated


def _scale(replicas: int = 5) -> RemediationRequest:
    return RemediationRequest(
        incident_id="inc-1",
        operation="scale",
        target_type="deployment",
        name="web",
        namespace=NAMESPACE,
        replicas=replicas,
    )


def _settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, allowed_namespaces=[NAMESPACE])


def test_the_action_log_and_the_target_are_read_at_once(tmp_path: Path) -> None:
    # Each of the two first reads waits for the other: one after the other, they never get past it.
    cluster = FakeCluster(meet=threading.Barrier(2, timeout=10))
    apis: Any = cluster
    result = remediation.remediate(apis, _settings(tmp_path), _scale())
    assert result.applied, result.message
    assert cluster.deployment_reads == 2  # the read before the write, and the PATCH's own answer
    assert cluster.patched_versions == ["2"]


def test_a_conflicting_write_is_retried_from_a_fresh_read(tmp_path: Path) -> None:
    cluster = FakeCluster(patch_conflicts=1)
    apis: KubeApis = cluster  # type: ignore[assignment]
    result = remediation.remediate(apis, _settings(tmp_path), _scale())
    assert result.applied, result.message
    # The object read with the action log serves the first attempt only; the retry reads again.
    assert cluster.patched_versions == ["2", "3"]


def test_a_target_that_cannot_be_read_fails_as_before(tmp_path: Path) -> None:
    class Missing(FakeCluster):
        def read_namespaced_deployment(self, name: str, namespace: str) -> V1Deployment:
            self.deployment_reads += 1
            raise ApiException(status=404, reason="Not Found")

    cluster = Missing()
    apis: Any = cluster
    with pytest.raises(ApiException) as raised:
        remediation.remediate(apis, _settings(tmp_path), _scale())
    assert raised.value.status == 404
    assert cluster.deployment_reads == 2  # the early read's error is left to the executor's own read
