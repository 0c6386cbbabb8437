"""The kube activities run by a real Temporal worker: typed boundaries, heartbeats, non-retryable 403s."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.context import ContextActivities
from activities.kube.activities import KubeActivities
from activities.kube.client import KubeApis
from config import Settings
from devstack.cluster.local import LocalCluster
from incidents.bundle import Change
from incidents.models import ContextRequest, ContextResult
from incidents.remediation import RemediationRequest, RemediationResult, VerificationResult, VerifyRequest
from tests.kube.helpers import create_deployment, current_images, service_account_kubeconfig, set_image

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
            context: ContextResult = await workflow.execute_activity_method(
                ContextActivities.collect_context,
                ContextRequest(
                    incident_id=probe.incident_id,
                    namespace=probe.namespace,
                    source="manual",
                    detected_at=workflow.now(),
                    lookback_s=3600,
                ),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=retry,
            )
            changes = context.bundle.changes
            # A worker that may not read the cluster sees no change: it still tries the Deployment.
            culprit = next((change for change in reversed(changes) if change.kind == "image"), None)
            request = RemediationRequest(
                incident_id=probe.incident_id,
                operation="rollback",
                target_type="deployment",
                name=culprit.rollback.name
                if culprit and culprit.rollback and culprit.rollback.name
                else "web",
                namespace=probe.namespace,
                change=culprit,
            )
            result = await workflow.execute_activity_method(
                KubeActivities.remediate,
                request,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=retry,
            )
            verification = await workflow.execute_activity_method(
                KubeActivities.verify_rollout,
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


async def _run_probe(client: Client, namespace: str, settings: Settings) -> ProbeOutput:
    task_queue = f"kube-probe-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[RollbackCulpritProbe],
            activities=[
                ContextActivities(settings).collect_context,
                KubeActivities(settings).remediate,
                KubeActivities(settings).verify_rollout,
            ],
            activity_executor=executor,
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            return await client.execute_workflow(
                RollbackCulpritProbe.run,
                ProbeInput(namespace=namespace, incident_id=f"inc-{uuid.uuid4().hex[:6]}"),
                id=f"kube-probe-{uuid.uuid4().hex[:8]}",
                task_queue=task_queue,
                execution_timeout=timedelta(minutes=3),
            )


async def test_a_workflow_rolls_back_the_culprit_and_verifies(
    temporal_client: Client,
    kube_apis: KubeApis,
    kube_namespace: str,
    kube_settings: Settings,
    tmp_path: Path,
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    set_image(kube_apis, kube_namespace, "web", "registry.local/web:2")
    set_image(kube_apis, kube_namespace, "web", "registry.local/web:3-bad")
    settings = kube_settings.model_copy(update={"state_dir": tmp_path})
    output = await _run_probe(temporal_client, kube_namespace, settings)
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
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    # The namespace's default ServiceAccount has no role at all.
    kubeconfig = service_account_kubeconfig(
        kube_apis, kube_cluster, kube_namespace, "default", tmp_path / "no-role.kubeconfig"
    )
    settings = kube_settings.model_copy(update={"kubeconfig": kubeconfig, "state_dir": tmp_path})
    output = await _run_probe(temporal_client, kube_namespace, settings)
    assert output.error_type == "KubeForbidden"
    assert output.retry_state == "NON_RETRYABLE_FAILURE"
