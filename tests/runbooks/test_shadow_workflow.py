"""Acceptance: a shadow-mode runbook, run by the real incident workflow, records the rollback it
would make and changes nothing in a real cluster; the same runbook in auto mode does roll back.

Real: Temporal dev server, IncidentWorkflow, load_runbooks_activity, the kube activities against
the local control plane, paging activities (unconfigured, so they answer Inconclusive). Stand-ins
only for the two sibling steps whose inputs this test must fix: the context bundle (one known
Deployment change) and the attribution ranking.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.kube.activities import KubeActivities
from activities.kube.client import KubeApis
from activities.paging.channels import CHANNELS
from activities.runbooks import load_runbooks_activity
from config import Settings
from incidents.bundle import (
    AttributionOutput,
    BundleIncident,
    Change,
    IncidentBundle,
    ModelInfo,
    RankedChange,
    RollbackHandle,
)
from incidents.key import IncidentKey
from incidents.models import Alert, ContextRequest, ContextResult, IncidentInput, IncidentSignal, IncidentView
from worker.temporal_server import TemporalDevServer
from workflows.incident import IncidentWorkflow

pytestmark = [pytest.mark.kube, pytest.mark.temporal, pytest.mark.slow]

RUNBOOK = """\
name: shadow-acceptance
mode: {mode}
match:
  alertnames: [ChatErrorBudgetBurn]
start: culprit
nodes:
  culprit:
    if: attribution.available and attribution.top.kind == "image" and attribution.top.probability >= 0.5
    then: roll_back
    else: page
  roll_back:
    actions:
      - rollback:
          kinds: [image]
  page:
    actions:
      - page:
          team: chat
"""


def _deployment(name: str, image: str) -> V1Deployment:
    labels = {"app": name}
    return V1Deployment(
        metadata=V1ObjectMeta(name=name),
        spec=V1DeploymentSpec(
            replicas=1,
            selector=V1LabelSelector(match_labels=labels),
            template=V1PodTemplateSpec(
                metadata=V1ObjectMeta(labels=labels),
                spec=V1PodSpec(containers=[V1Container(name="app", image=image)]),
            ),
        ),
    )


def _deploy_two_revisions(apis: KubeApis, namespace: str, name: str) -> None:
    apis.apps.create_namespaced_deployment(namespace, _deployment(name, "chat:v1"))
    _wait_for_revision(apis, namespace, name, "1")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "chat:v2"}]}}}}
    apis.apps.patch_namespaced_deployment(name, namespace, patch)
    _wait_for_revision(apis, namespace, name, "2")


def _wait_for_revision(apis: KubeApis, namespace: str, name: str, revision: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        annotations = apis.apps.read_namespaced_deployment(name, namespace).metadata.annotations or {}
        if annotations.get("deployment.kubernetes.io/revision") == revision:
            return
        time.sleep(0.2)
    pytest.fail(f"deployment {name} never reached revision {revision}")


def _image(apis: KubeApis, namespace: str, name: str) -> str:
    return str(apis.apps.read_namespaced_deployment(name, namespace).spec.template.spec.containers[0].image)


def _stand_ins(namespace: str, name: str) -> list[Callable[..., Any]]:
    change = Change(
        id="chg-chat-v2",
        service=name,
        namespace=namespace,
        kind="image",
        started_at=datetime.now(UTC),
        from_version="chat:v1",
        to_version="chat:v2",
        rollback=RollbackHandle(type="deployment", name=name, namespace=namespace, revision=2),
    )

    @activity.defn(name="collect_context")
    async def collect_context(request: ContextRequest) -> ContextResult:
        incident = BundleIncident(id=request.incident_id, detected_at=request.detected_at, service=name)
        return ContextResult(bundle=IncidentBundle(version=1, incident=incident, changes=[change]))

    @activity.defn(name="attribute_bundle")
    async def attribute_bundle(bundle: IncidentBundle) -> AttributionOutput:
        ranking = [RankedChange(change_id=change.id, probability=0.9, reasons=["stand-in"])]
        return AttributionOutput(
            incident_id=bundle.incident.id, ranking=ranking, model=ModelInfo(name="stand-in", version="1")
        )

    return [collect_context, attribute_bundle]


async def _run_incident(
    server: TemporalDevServer, settings: Settings, runbook_dir: Path, namespace: str, name: str
) -> IncidentView:
    client = await Client.connect(server.address, data_converter=pydantic_data_converter)
    queue = f"shadow-{uuid.uuid4().hex[:8]}"
    incident_id = f"inc-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    signal = IncidentSignal(
        source="alertmanager",
        received_at=now,
        alerts=[
            Alert(
                fingerprint="fp-1",
                status="firing",
                labels={"alertname": "ChatErrorBudgetBurn", "severity": "critical", "service": name},
                starts_at=now,
            )
        ],
    )
    params = IncidentInput(
        incident_id=incident_id,
        key=IncidentKey(namespace=namespace, service=name, group=name),
        source="alertmanager",
        settle_s=0,
        cooldown_s=0,
        runbook_dir=str(runbook_dir),
    )
    activities = _stand_ins(namespace, name)
    kube = KubeActivities(settings)
    activities.extend([load_runbooks_activity, kube.remediate, kube.verify_rollout])
    activities.extend(channel(settings).notify for channel in CHANNELS.values())
    async with Worker(client, task_queue=queue, workflows=[IncidentWorkflow], activities=activities):
        handle = await client.start_workflow(
            IncidentWorkflow.run,
            params,
            id=incident_id,
            task_queue=queue,
            start_signal="add_signal",
            start_signal_args=[signal],
        )
        return await asyncio.wait_for(handle.result(), timeout=120)


async def test_shadow_runbook_records_and_changes_nothing_auto_rolls_back(
    temporal_server: TemporalDevServer,
    kube_settings: Settings,
    kube_apis: KubeApis,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    settings = kube_settings.model_copy(update={"state_dir": tmp_path / "state"})
    for mode in ("shadow", "auto"):
        (tmp_path / mode).mkdir()
        (tmp_path / mode / "runbook.yaml").write_text(RUNBOOK.format(mode=mode))

    _deploy_two_revisions(kube_apis, kube_namespace, "chat-shadow")
    before = kube_apis.apps.read_namespaced_deployment("chat-shadow", kube_namespace)
    view = await _run_incident(temporal_server, settings, tmp_path / "shadow", kube_namespace, "chat-shadow")

    assert view.decision is not None and view.decision.runbook == "shadow-acceptance"
    assert [(a.type, a.mode) for a in view.decision.actions] == [("rollback", "shadow")]
    rollback_records = [record for record in view.actions if record.action == "rollback"]
    assert [(r.mode, r.outcome) for r in rollback_records] == [("shadow", "would_have")]
    assert view.state == "shadowed"
    after = kube_apis.apps.read_namespaced_deployment("chat-shadow", kube_namespace)
    assert after.metadata.generation == before.metadata.generation
    assert after.spec.to_dict() == before.spec.to_dict()  # status may move on as pods start; spec may not
    revision = "deployment.kubernetes.io/revision"
    assert after.metadata.annotations[revision] == before.metadata.annotations[revision] == "2"
    assert _image(kube_apis, kube_namespace, "chat-shadow") == "chat:v2"

    # Control: the same tree in auto mode really rolls back, so the check above can fail.
    _deploy_two_revisions(kube_apis, kube_namespace, "chat-auto")
    view = await _run_incident(temporal_server, settings, tmp_path / "auto", kube_namespace, "chat-auto")
    assert [(r.action, r.mode, r.outcome) for r in view.actions if r.action == "rollback"] == [
        ("rollback", "auto", "Successful")
    ]
    assert _image(kube_apis, kube_namespace, "chat-auto") == "chat:v1"
