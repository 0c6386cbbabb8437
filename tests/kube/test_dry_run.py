"""Dry run that means it (issue 13): with kube_dry_run (or a namespace in kube_dry_run_namespaces)
every Kubernetes write backout makes is a server-side dry run, on every path: the `backout rollback`
CLI, a whole incident on the real workflow and worker (remediation and the ConfigMap history
recorder), and RBAC still judges each write. Every object is left as it was, and the incident
says what backout would have done, with the diff."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import (
    RbacAuthorizationV1Api,
    RbacV1Subject,
    V1ConfigMap,
    V1ObjectMeta,
    V1PolicyRule,
    V1Role,
    V1RoleBinding,
    V1RoleRef,
    V1ServiceAccount,
)
from pydantic import SecretStr
from temporalio.client import Client

from activities.incidents import IncidentBehaviour, open_or_join
from activities.kube import activities as kube_activities
from activities.kube.client import KubeApis
from api.sources.alertmanager import AlertmanagerPayload
from config import Settings
from devstack.cluster.local import LocalCluster
from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.server import TlsFiles
from devstack.receivers.slack import SlackReceiver
from incidents.models import IncidentView, OpenIncidentRequest
from incidents.remediation import RemediationRequest
from tests.fixtures.receivers import PD_TEST_ROUTING_KEY, SLACK_TEST_TOKEN
from tests.fixtures.temporal import running_worker
from tests.kube.helpers import create_deployment, current_images, service_account_kubeconfig, set_image
from tests.pipeline.payloads import alert, notification

pytestmark = pytest.mark.kube

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "tests" / "pipeline" / "history_runbooks"
Snapshot = dict[tuple[str, str], tuple[str, Any]]


def snapshot(apis: KubeApis, namespace: str) -> Snapshot:
    """(kind, name) -> (resourceVersion, content) of every object backout could write in `namespace`,
    and of the pods (a rollout would replace them)."""
    found: Snapshot = {}
    serialize = apis.api_client.sanitize_for_serialization
    listings = {
        "deployment": apis.apps.list_namespaced_deployment(namespace).items,
        "replicaset": apis.apps.list_namespaced_replica_set(namespace).items,
        "configmap": apis.core.list_namespaced_config_map(namespace).items,
        "secret": apis.core.list_namespaced_secret(namespace).items,
        "pod": apis.core.list_namespaced_pod(namespace).items,
    }
    for kind, items in listings.items():
        for item in items:
            body = serialize(item)
            content = {key: body.get(key) for key in ("spec", "data", "binaryData")}
            content["annotations"] = body["metadata"].get("annotations")
            found[(kind, item.metadata.name)] = (item.metadata.resource_version, content)
    return found


def _two_revisions(apis: KubeApis, namespace: str, name: str = "web") -> None:
    create_deployment(apis, namespace, name, f"registry.local/{name}:1")
    set_image(apis, namespace, name, f"registry.local/{name}:2", cause=f"deploy {name} 2")


def _cli_rollback(kubeconfig: Path, namespace: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("BACKOUT_")}
    environment.update(
        {"BACKOUT_KUBECONFIG": str(kubeconfig), "BACKOUT_ALLOWED_NAMESPACES": namespace, **env}
    )
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "rollback", "deployment/web", "-n", namespace, "--no-wait"],
        env=environment,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "switch",
    [{"BACKOUT_KUBE_DRY_RUN": "true"}, {"BACKOUT_KUBE_DRY_RUN_NAMESPACES": "{namespace}"}],
    ids=["kube_dry_run", "kube_dry_run_namespaces"],
)
def test_cli_rollback_in_dry_run_changes_nothing_and_says_what_it_would_do(
    kube_cluster: LocalCluster, kube_apis: KubeApis, kube_namespace: str, switch: dict[str, str]
) -> None:
    _two_revisions(kube_apis, kube_namespace)
    before = snapshot(kube_apis, kube_namespace)
    env = {key: value.format(namespace=kube_namespace) for key, value in switch.items()}
    result = _cli_rollback(kube_cluster.kubeconfig, kube_namespace, **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "would roll back from revision 2 to 1" in result.stdout, result.stdout
    assert "registry.local/web:1" in result.stdout  # the diff the server answered
    assert snapshot(kube_apis, kube_namespace) == before
    assert current_images(kube_apis, kube_namespace, "web") == ["registry.local/web:2"]


def test_a_namespace_not_in_the_dry_run_list_is_rolled_back(
    kube_cluster: LocalCluster, kube_apis: KubeApis, kube_namespace: str
) -> None:
    _two_revisions(kube_apis, kube_namespace)
    result = _cli_rollback(
        kube_cluster.kubeconfig, kube_namespace, BACKOUT_KUBE_DRY_RUN_NAMESPACES="some-other-namespace"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rolled back from revision 2 to 1" in result.stdout, result.stdout
    assert current_images(kube_apis, kube_namespace, "web") == ["registry.local/web:1"]


def test_rbac_still_judges_a_dry_run_write(
    kube_cluster: LocalCluster, kube_apis: KubeApis, kube_namespace: str, tmp_path: Path
) -> None:
    """An identity that may read Deployments but not patch them: the dry run is refused by RBAC,
    as the real write would be."""
    _two_revisions(kube_apis, kube_namespace)
    kube_apis.core.create_namespaced_service_account(
        kube_namespace, V1ServiceAccount(metadata=V1ObjectMeta(name="reader"))
    )
    read_only = ["get", "list", "watch"]
    rbac = RbacAuthorizationV1Api(kube_apis.api_client)
    rbac.create_namespaced_role(
        kube_namespace,
        V1Role(
            metadata=V1ObjectMeta(name="reader"),
            rules=[
                V1PolicyRule(api_groups=["apps"], resources=["deployments", "replicasets"], verbs=read_only),
                V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=read_only),
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        kube_namespace,
        V1RoleBinding(
            metadata=V1ObjectMeta(name="reader"),
            role_ref=V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="reader"),
            subjects=[RbacV1Subject(kind="ServiceAccount", name="reader", namespace=kube_namespace)],
        ),
    )
    kubeconfig = service_account_kubeconfig(
        kube_apis, kube_cluster, kube_namespace, "reader", tmp_path / "kc"
    )
    settings = Settings(
        state_dir=tmp_path / "state",
        kubeconfig=kubeconfig,
        kube_dry_run=True,
        allowed_namespaces=[kube_namespace],
    )
    request = RemediationRequest(
        incident_id="inc-dry-rbac",
        operation="rollback",
        target_type="deployment",
        name="web",
        namespace=kube_namespace,
    )
    with pytest.raises(Exception, match=r"(?i)forbidden|403"):
        kube_activities.remediate_now(settings, request)
    assert current_images(kube_apis, kube_namespace, "web") == ["registry.local/web:2"]


def _signal(namespace: str, service: str, alertname: str) -> OpenIncidentRequest:
    starts = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    body = notification(
        [alert(name=alertname, service=service, namespace=namespace, starts_at=starts)], group=service
    )
    payload = AlertmanagerPayload.model_validate(body)
    return OpenIncidentRequest(key=payload.incident_key(), signal=payload.to_signal(datetime.now(UTC)))


@pytest.mark.temporal
@pytest.mark.slow
async def test_a_whole_incident_in_dry_run_changes_nothing_and_reports_what_it_would_have_done(
    kube_cluster: LocalCluster,
    kube_apis: KubeApis,
    kube_namespace: str,
    temporal_client: Client,
    backout_settings: Settings,
    receivers_tls: TlsFiles,
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
) -> None:
    namespace = kube_namespace
    await asyncio.to_thread(_two_revisions, kube_apis, namespace, "chat")
    # A ConfigMap the history recorder would copy: in dry run its history write is a dry run too.
    kube_apis.core.create_namespaced_config_map(
        namespace, V1ConfigMap(metadata=V1ObjectMeta(name="chat-prompt"), data={"prompt": "Answer briefly."})
    )
    settings = backout_settings.model_copy(
        update={
            "kubeconfig": kube_cluster.kubeconfig,
            "allowed_namespaces": [namespace],
            "kube_dry_run": True,
            "runbook_dir": RUNBOOKS,
            "pagerduty_routing_key": SecretStr(PD_TEST_ROUTING_KEY),
            "pagerduty_events_url": pagerduty_receiver.url,
            "pagerduty_ca_file": receivers_tls.ca_file,
            "slack_token": SecretStr(SLACK_TEST_TOKEN),
            "slack_api_url": f"{slack_receiver.url}/api/",
            "slack_channel": "#incidents",
        }
    )
    before = await asyncio.to_thread(snapshot, kube_apis, namespace)
    async with running_worker(temporal_client, settings):
        handle = await open_or_join(
            temporal_client, IncidentBehaviour(settings), _signal(namespace, "chat", "HistoryRollback")
        )
        view = IncidentView.model_validate(await asyncio.wait_for(handle.result(), timeout=120))
    after = await asyncio.to_thread(snapshot, kube_apis, namespace)
    timeline = "\n".join(f"{e.kind} {e.step}: {e.message}" for e in view.timeline)

    assert after == before, "a dry-run incident changed the cluster"
    assert current_images(kube_apis, namespace, "chat") == ["registry.local/chat:2"]
    [rollback] = [record for record in view.actions if record.action == "rollback"]
    assert rollback.outcome == "would_have" and rollback.dry_run, rollback
    assert "would roll back from revision 2 to 1" in rollback.message
    assert (
        "+      - image: registry.local/chat:1" in rollback.diff or "registry.local/chat:1" in rollback.diff
    )
    assert not any(record.outcome == "Successful" and record.action == "rollback" for record in view.actions)
    [verify] = [record for record in view.actions if record.action == "wait_verify"]
    assert verify.outcome == "skipped"
    # Nothing applied: a human acts, told what backout would have done.
    assert view.state == "needs_human", timeline
    assert "dry run: would have run rollback" in view.summary, view.summary
    assert any(e.kind == "action" and e.message.startswith("dry run:") for e in view.timeline), timeline
    assert not any(d.event == "rollback_performed" for d in view.deliveries)
    assert pagerduty_receiver.change_events == []  # a change event says backout changed something
    triggers = [event for event in pagerduty_receiver.events if event["event_action"] == "trigger"]
    assert triggers and "dry run: would have run rollback" in str(triggers[-1]["payload"]["custom_details"])
    texts = [message.text + str(message.blocks) for message in slack_receiver.messages.values()]
    assert any("dry run" in text and "would roll back" in text for text in texts), texts
