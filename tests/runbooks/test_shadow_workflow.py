"""Acceptance: a shadow-mode runbook, run by the real incident workflow, records the rollback it
would make and changes nothing in a real cluster; the same runbook in auto mode does roll back.

Real: Temporal dev server, IncidentWorkflow, load_runbooks_activity, the kube activities against
the local control plane, paging channels (unconfigured, so they answer Inconclusive). Stand-ins
only for the two sibling steps whose inputs this test must fix (tests/runbooks/incident_runs.py):
the context bundle (one known Deployment change) and the attribution ranking.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
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

from activities.kube.client import KubeApis
from config import Settings
from incidents.models import Alert, IncidentSignal, IncidentView
from tests.runbooks.incident_runs import run_incident
from worker.temporal_server import TemporalDevServer

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


async def _run_incident(
    server: TemporalDevServer, settings: Settings, runbook_dir: Path, namespace: str, name: str
) -> IncidentView:
    now = datetime.now(UTC)
    labels = {"alertname": "ChatErrorBudgetBurn", "severity": "critical", "service": name}
    alert = Alert(fingerprint="fp-1", status="firing", labels=labels, starts_at=now)
    opening = IncidentSignal(source="alertmanager", received_at=now, alerts=[alert])
    return await run_incident(server, settings, runbook_dir, namespace, name, opening)


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
