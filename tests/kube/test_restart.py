"""The restart action (a rollout restart, `kubectl rollout restart`) on the local control plane:
parsed from a runbook, planned, executed through the guarded frame and by the real workflow."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from activities.kube import remediation
from activities.kube.actions.restart import RESTARTED_AT_ANNOTATION
from activities.kube.client import KubeApis
from config import Settings
from incidents.actions.restart import RestartAction
from incidents.bundle import AttributionOutput, Change, ModelInfo, RankedChange, RollbackHandle
from incidents.models import Alert, DecisionContext, IncidentSignal
from incidents.remediation import RemediationRequest
from runbooks.engine import run_runbook
from runbooks.lint import lint_text
from tests.kube.helpers import assert_rolled_out, create_deployment, running_pod_images, wait_until
from tests.runbooks.incident_runs import run_incident
from worker.temporal_server import TemporalDevServer

pytestmark = pytest.mark.kube

RUNBOOK = """\
name: restart-stuck-pods
mode: auto
match:
  alertnames: [ChatPodsStuck]
start: restart
nodes:
  restart:
    actions:
      - restart:
      - wait_verify: {duration: 0, timeout: 60}
"""


def _restart(
    namespace: str, name: str = "web", incident: str = "inc-restart", dry_run: bool = False
) -> RemediationRequest:
    return RemediationRequest(
        incident_id=incident,
        operation="restart",
        target_type="deployment",
        name=name,
        namespace=namespace,
        dry_run=dry_run,
    )


def _template_stamp(apis: KubeApis, namespace: str, name: str) -> str | None:
    deployment = apis.apps.read_namespaced_deployment(name, namespace)
    return (deployment.spec.template.metadata.annotations or {}).get(RESTARTED_AT_ANNOTATION)


def test_a_runbook_restart_step_plans_the_attributed_deployment() -> None:
    result = lint_text(RUNBOOK, "restart.yaml")
    assert result.problems == [] and result.runbook is not None
    change = Change(
        id="chg-1",
        service="chat",
        namespace="prod",
        kind="image",
        started_at=datetime(2026, 11, 27, 9, tzinfo=UTC),
        rollback=RollbackHandle(type="deployment", name="chat-api", namespace="prod", revision=2),
    )
    ctx = DecisionContext(
        incident_id="inc-1",
        service="chat",
        namespace="prod",
        source="alertmanager",
        alertnames=["ChatPodsStuck"],
        attribution=AttributionOutput(
            incident_id="inc-1",
            ranking=[RankedChange(change_id="chg-1", probability=0.9)],
            model=ModelInfo(name="t", version="1"),
        ),
        changes=[change],
        now=datetime(2026, 11, 27, 10, tzinfo=UTC),
    )
    decision = run_runbook(result.runbook, ctx)
    [restart, _] = decision.actions
    assert isinstance(restart, RestartAction) and (restart.deployment, restart.mode) == ("chat-api", "auto")
    request = restart.request(change, "inc-1", "prod")
    assert isinstance(request, RemediationRequest)
    assert (request.operation, request.target_type, request.name) == ("restart", "deployment", "chat-api")


def test_restart_rolls_out_new_pods_of_the_same_template_once(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    pods_before = set(wait_until(lambda: running_pod_images(kube_apis, kube_namespace, "web")))
    generation = kube_apis.apps.read_namespaced_deployment("web", kube_namespace).metadata.generation

    dry = remediation.remediate(kube_apis, kube_settings, _restart(kube_namespace, dry_run=True))
    assert dry.outcome == "Successful" and not dry.applied and dry.message.startswith("would restart")
    assert _template_stamp(kube_apis, kube_namespace, "web") is None

    result = remediation.remediate(kube_apis, kube_settings, _restart(kube_namespace))
    assert result.applied and result.from_version == "never restarted", result
    assert result.to_version == _template_stamp(kube_apis, kube_namespace, "web")
    assert RESTARTED_AT_ANNOTATION in result.diff
    assert (
        kube_apis.apps.read_namespaced_deployment("web", kube_namespace).metadata.generation == generation + 1
    )
    assert_rolled_out(kube_apis, kube_namespace, "web")
    pods_after = wait_until(lambda: set(running_pod_images(kube_apis, kube_namespace, "web")) - pods_before)
    assert len(pods_after) == 2 and set(running_pod_images(kube_apis, kube_namespace, "web").values()) == {
        "registry.local/web:1"
    }

    again = remediation.remediate(kube_apis, kube_settings, _restart(kube_namespace))
    assert again.message.startswith("already applied")
    assert (
        kube_apis.apps.read_namespaced_deployment("web", kube_namespace).metadata.generation == generation + 1
    )


def test_a_paused_deployment_is_not_restarted(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    kube_apis.apps.patch_namespaced_deployment("web", kube_namespace, {"spec": {"paused": True}})
    result = remediation.remediate(kube_apis, kube_settings, _restart(kube_namespace, incident="inc-paused"))
    assert result.outcome == "Failed" and "paused" in result.message
    assert _template_stamp(kube_apis, kube_namespace, "web") is None


@pytest.mark.temporal
async def test_the_incident_workflow_restarts_and_verifies(
    temporal_server: TemporalDevServer,
    kube_apis: KubeApis,
    kube_namespace: str,
    kube_settings: Settings,
    tmp_path: Path,
) -> None:
    create_deployment(kube_apis, kube_namespace, "chat", "registry.local/chat:1")
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "restart.yaml").write_text(RUNBOOK)
    settings = kube_settings.model_copy(update={"state_dir": tmp_path / "state"})
    now = datetime.now(UTC)

    def alert(status: str) -> IncidentSignal:
        labels = {"alertname": "ChatPodsStuck", "severity": "critical", "service": "chat"}
        stuck = Alert(fingerprint="stuck", status=status, labels=labels, starts_at=now)  # type: ignore[arg-type]
        return IncidentSignal(source="alertmanager", received_at=datetime.now(UTC), alerts=[stuck])

    view = await run_incident(
        temporal_server,
        settings,
        tmp_path / "runbooks",
        kube_namespace,
        "chat",
        alert("firing"),
        alert("resolved"),
    )

    assert view.decision is not None and [a.type for a in view.decision.actions] == ["restart", "wait_verify"]
    [restarted] = [record for record in view.actions if record.action == "restart"]
    assert restarted.outcome == "Successful" and restarted.target == f"deployment/{kube_namespace}/chat"
    assert [record.outcome for record in view.actions if record.action == "verify_rollout"] == ["Successful"]
    assert view.state == "recovered"
    assert _template_stamp(kube_apis, kube_namespace, "chat") == restarted.message.split("restartedAt ")[
        1
    ].rstrip(")")
