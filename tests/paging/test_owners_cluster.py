"""Ownership from the workload's `backout.dev/team` annotation on a real control plane."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes.client import (
    V1Container,
    V1Deployment,
    V1DeploymentSpec,
    V1LabelSelector,
    V1ObjectMeta,
    V1PodSpec,
    V1PodTemplateSpec,
)
from typer.testing import CliRunner

from activities.kube.client import KubeApis
from activities.paging.owners import OwnerLookup, OwnerRequest
from config import Settings
from devstack.cluster.local import LocalCluster
from worker.cli import app as cli

pytestmark = pytest.mark.kube


def _deployment(name: str, annotations: dict[str, str]) -> V1Deployment:
    labels = {"app": name}
    return V1Deployment(
        metadata=V1ObjectMeta(name=name, annotations=annotations),
        spec=V1DeploymentSpec(
            replicas=0,
            selector=V1LabelSelector(match_labels=labels),
            template=V1PodTemplateSpec(
                metadata=V1ObjectMeta(labels=labels),
                spec=V1PodSpec(containers=[V1Container(name="app", image="example/app:1")]),
            ),
        ),
    )


def test_annotation_owns_the_workload_and_owners_check_lists_the_cluster(
    kube_cluster: LocalCluster, kube_apis: KubeApis, kube_namespace: str, owners_file: Path, tmp_path: Path
) -> None:
    kube_apis.apps.create_namespaced_deployment(
        kube_namespace, _deployment("annotated", {"backout.dev/team": "search"})
    )
    kube_apis.apps.create_namespaced_deployment(kube_namespace, _deployment("orphan", {}))
    settings = Settings(state_dir=tmp_path, ownership_file=owners_file, kubeconfig=kube_cluster.kubeconfig)

    owner = OwnerLookup(settings).owner(OwnerRequest(service="annotated", namespace=kube_namespace))
    assert (owner.team, owner.source, owner.slack_channel) == ("search", "annotation", "#search")
    assert OwnerLookup(settings).owner(OwnerRequest(service="orphan", namespace=kube_namespace)).team is None

    result = CliRunner().invoke(
        cli,
        [
            "owners", "check", "--file", str(owners_file), "--from-cluster",
            "--kubeconfig", str(kube_cluster.kubeconfig), "--namespace", kube_namespace,
        ],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert f"{kube_namespace}/annotated -> search" in result.output
    assert f"NONE  {kube_namespace}/orphan" in result.output
