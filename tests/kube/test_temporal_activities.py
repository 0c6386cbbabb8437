"""The kube activities run by a real Temporal worker: typed boundaries, heartbeats, non-retryable 403s."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.kube.activities import (
    ACTIVITIES,
    ListChangesRequest,
    list_cluster_changes,
    remediate,
    verify_rollout,
)
from activities.kube.client import KubeApis
from devstack.cluster.local import LocalCluster
from incidents.bundle import Change
from incidents.remediation import RemediationRequest, RemediationResult, VerificationResult, VerifyRequest
from tests.kube.helpers import create_deployment, current_images, service_account_kubeconfig, set_image
from worker.settings import Settings

pytestmark = [pytest.mark.kube, pytest.mark.temporal]


class ProbeInput(BaseModel):
    namespace: str
    incident_id: str


class ProbeOutput(BaseModel):
    changes: list[Change]
    remediation: RemediationResult | None = None
    verification: VerificationResult | None = None
    error_type: str | None = None
    retry_state: str | None = None


@workflow.defn(sandboxed=False)
class RollbackCulpritProbe:
    """Roll back the newest image change, as the incident workflow would, and verify it."""

    @workflow.run
    async def run(self, probe: ProbeInput) -> ProbeOutput:
        retry = RetryPolicy(maximum_attempts=4, initial_interval=timedelta(milliseconds=200))
        try:
            changes = await workflow.execute_activity(
                list_cluster_changes,
                ListChangesRequest(namespaces=[probe.namespace], since=workflow.now() - timedelta(hours=1)),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=retry,
            )
            culprit = [change for change in changes if change.kind == "image"][-1]
            assert culprit.rollback is not None and culprit.rollback.name is not None
            request = RemediationRequest(
                incident_id=probe.incident_id,
                operation="rollback",
                target_type="deployment",
                name=culprit.rollback.name,
                namespace=probe.namespace,
                change=culprit,
            )
            result = await workflow.execute_activity(
                remediate, request, start_to_close_timeout=timedelta(seconds=60), retry_policy=retry
            )
            verification = await workflow.execute_activity(
                verify_rollout,
                VerifyRequest(
                    target_type="deployment", name=request.name, namespace=probe.namespace, timeout_s=60
                ),
                start_to_close_timeout=timedelta(seconds=90),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=retry,
            )
        except ActivityError as exc:
            cause = exc.cause
            return ProbeOutput(
                changes=[],
                error_type=cause.type if isinstance(cause, ApplicationError) else type(cause).__name__,
                retry_state=exc.retry_state.name if exc.retry_state is not None else None,
            )
        return ProbeOutput(changes=changes, remediation=result, verification=verification)


async def _run_probe(client: Client, namespace: str) -> ProbeOutput:
    task_queue = f"kube-probe-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[RollbackCulpritProbe],
        activities=ACTIVITIES,
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        return await client.execute_workflow(
            RollbackCulpritProbe.run,
            ProbeInput(namespace=namespace, incident_id=f"inc-{uuid.uuid4().hex[:6]}"),
            id=f"kube-probe-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )


async def test_a_workflow_rolls_back_the_culprit_and_verifies(
    temporal_client: Client, kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    set_image(kube_apis, kube_namespace, "web", "registry.local/web:2")
    set_image(kube_apis, kube_namespace, "web", "registry.local/web:3-bad")
    output = await _run_probe(temporal_client, kube_namespace)
    assert output.error_type is None
    assert [c.to_version for c in output.changes if c.kind == "image"] == [
        "registry.local/web:2",
        "registry.local/web:3-bad",
    ]
    assert output.remediation is not None and output.remediation.applied
    assert output.verification is not None and output.verification.outcome == "Successful"
    assert current_images(kube_apis, kube_namespace, "web") == ["registry.local/web:2"]
    assert all(change.started_at <= datetime.now(UTC) for change in output.changes)


async def test_a_forbidden_remediation_is_not_retried(
    temporal_client: Client,
    kube_apis: KubeApis,
    kube_cluster: LocalCluster,
    kube_namespace: str,
    kube_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    # The namespace's default ServiceAccount has no role at all.
    kubeconfig = service_account_kubeconfig(
        kube_apis, kube_cluster, kube_namespace, "default", tmp_path / "no-role.kubeconfig"
    )
    monkeypatch.setenv("BACKOUT_KUBECONFIG", str(kubeconfig))
    output = await _run_probe(temporal_client, kube_namespace)
    assert output.error_type == "KubeForbidden"
    assert output.retry_state == "NON_RETRYABLE_FAILURE"
