"""Faults the pipeline survives, each on real parts: a killed worker mid-rollback, the apiserver
gone for 20 s during remediation, and a PagerDuty that answers 500 for a minute.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowHandle

from activities.incidents import IncidentBehaviour, open_or_join
from activities.kube.client import KubeApis
from activities.kube.ledger import APPLIED_BY_ANNOTATION as APPLIED_BY
from config import Settings
from devstack.cluster.local import LocalCluster
from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.server import TlsFiles
from incidents.models import ApprovalDecision, IncidentView
from tests.faults.hold import held_deployment_write
from tests.fixtures.receivers import PD_TEST_ROUTING_KEY
from tests.fixtures.temporal import running_worker, settings_for, worker_subprocess
from tests.kube.helpers import create_deployment, current_images, set_image
from tests.pipeline.payloads import open_request
from worker.temporal_client import connect
from worker.temporal_server import TemporalDevServer

pytestmark = [pytest.mark.temporal, pytest.mark.slow, pytest.mark.timeout(600)]
RUNBOOKS = Path(__file__).parent / "runbooks"


def _two_revisions(apis: KubeApis, namespace: str, name: str) -> None:
    create_deployment(apis, namespace, name, f"{name}:v1", replicas=1)
    set_image(apis, namespace, name, f"{name}:v2")


def _max_revision(apis: KubeApis, namespace: str, name: str) -> int:
    sets = apis.apps.list_namespaced_replica_set(namespace, label_selector=f"app={name}").items
    return max(
        int((rs.metadata.annotations or {}).get("deployment.kubernetes.io/revision", "0")) for rs in sets
    )


async def _awaiting_approval(handle: WorkflowHandle[Any, Any], timeout_s: float = 90) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        view = await handle.query("view", result_type=IncidentView)
        if view.state == "awaiting_approval" and view.approval is not None:
            return view.approval.request_id
        if view.state in ("needs_human", "no_action"):
            pytest.fail(f"incident ended before approval: {[e.message for e in view.timeline]}")
        await asyncio.sleep(0.2)
    pytest.fail("the incident never asked for approval")


async def _rolled_back(handle: WorkflowHandle[Any, Any], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        view = await handle.query("view", result_type=IncidentView)
        if any(record.action == "rollback" for record in view.actions):
            return
        if view.state == "needs_human":
            pytest.fail(f"remediation failed: {[e.message for e in view.timeline]}")
        await asyncio.sleep(0.5)
    pytest.fail("no rollback was recorded")


@pytest.fixture
def drill_settings(
    temporal_server: TemporalDevServer, kube_cluster: LocalCluster, kube_namespace: str, tmp_path: Path
) -> Settings:
    return settings_for(
        temporal_server,
        tmp_path / "state",
        kubeconfig=kube_cluster.kubeconfig,
        allowed_namespaces=[kube_namespace],
        runbook_dir=RUNBOOKS,
        incident_settle_s=0.5,
    )


async def _finish(
    client: Client, handle: WorkflowHandle[Any, Any], service: str, namespace: str
) -> IncidentView:
    await _rolled_back(handle)
    await handle.signal(
        "add_signal", open_request(service, namespace, status="resolved", name="FaultDrill").signal
    )
    return IncidentView.model_validate(await asyncio.wait_for(handle.result(), timeout=120))


@pytest.mark.kube
async def test_apiserver_gone_for_20s_during_remediation_is_ridden_out(
    drill_settings: Settings, kube_cluster: LocalCluster, kube_apis: KubeApis, kube_namespace: str
) -> None:
    await asyncio.to_thread(_two_revisions, kube_apis, kube_namespace, "web")
    client = await connect(drill_settings, attempts=20)
    async with running_worker(client, drill_settings):
        handle = await open_or_join(
            client, IncidentBehaviour(drill_settings), open_request("web", kube_namespace, name="FaultDrill")
        )
        request_id = await _awaiting_approval(handle)
        await asyncio.to_thread(kube_cluster.stop_component, "kube-apiserver")
        try:
            await handle.execute_update(
                "approve", ApprovalDecision(request_id=request_id, approve=True, user="tester")
            )
            # The outage lasts 20 s and the remediation runs into it: an attempt failed on it.
            outage_ends = time.monotonic() + 20
            async with asyncio.timeout(90):
                while True:
                    activity = await _remediation_in_flight(handle)
                    failed = activity is not None and activity.attempt >= 2
                    if failed and time.monotonic() >= outage_ends:
                        break
                    await asyncio.sleep(0.2)
        finally:
            await asyncio.to_thread(kube_cluster.start_component, "kube-apiserver")
        view = await _finish(client, handle, "web", kube_namespace)
    assert view.state == "recovered", [e.message for e in view.timeline]
    assert [r.outcome for r in view.actions if r.action == "rollback"] == ["Successful"]
    assert current_images(kube_apis, kube_namespace, "web") == ["web:v1"]
    assert _max_revision(kube_apis, kube_namespace, "web") == 3


async def _remediation_in_flight(handle: WorkflowHandle[Any, Any]) -> Any:
    """The remediate activity as Temporal sees it now (None when it is not pending)."""
    pending = (await handle.describe()).raw_description.pending_activities
    return next((a for a in pending if a.activity_type.name == "remediate"), None)


def _is_backout_write(admission: dict[str, Any]) -> bool:
    """The rollback's PATCH: it stamps backout.dev/applied-by on an object that did not carry it."""

    def stamp(key: str) -> str | None:
        return ((admission.get(key) or {}).get("metadata") or {}).get("annotations", {}).get(APPLIED_BY)

    return stamp("object") is not None and stamp("oldObject") is None


@pytest.mark.kube
async def test_worker_killed_during_a_rollback_applies_it_exactly_once(
    drill_settings: Settings, kube_apis: KubeApis, kube_namespace: str, tmp_path: Path
) -> None:
    """The worker dies while its rollback PATCH is inside the apiserver (sent, not answered): the
    next worker retries the activity and the rollback is applied exactly once."""
    await asyncio.to_thread(_two_revisions, kube_apis, kube_namespace, "api")
    client = await connect(drill_settings, attempts=20)
    first = worker_subprocess(drill_settings)
    try:
        handle = await open_or_join(
            client, IncidentBehaviour(drill_settings), open_request("api", kube_namespace, name="FaultDrill")
        )
        request_id = await _awaiting_approval(handle)
        with held_deployment_write(
            kube_apis, kube_namespace, "api", tmp_path / "hold", _is_backout_write
        ) as held:
            await handle.execute_update(
                "approve", ApprovalDecision(request_id=request_id, approve=True, user="tester")
            )
            assert await asyncio.to_thread(held.holding.wait, 90), (
                "the rollback PATCH never reached the apiserver"
            )
            activity = await _remediation_in_flight(handle)
            assert (
                activity is not None and activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            )
            assert activity.attempt == 1, activity
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            held.released.set()  # the apiserver answers a client that is gone
    finally:
        if first.poll() is None:
            first.kill()
    second = worker_subprocess(drill_settings)
    try:
        view = await _finish(client, handle, "api", kube_namespace)
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert view.state == "recovered", [e.message for e in view.timeline]
    assert len([r for r in view.actions if r.action == "rollback"]) == 1
    assert current_images(kube_apis, kube_namespace, "api") == ["api:v1"]
    assert _max_revision(kube_apis, kube_namespace, "api") == 3, "the rollback was applied once"


async def test_pagerduty_down_for_a_minute_pages_once_afterwards(
    temporal_server: TemporalDevServer,
    tmp_path: Path,
    pagerduty_receiver: PagerDutyReceiver,
    receivers_tls: TlsFiles,
) -> None:
    settings = settings_for(
        temporal_server,
        tmp_path / "state",
        pagerduty_routing_key=SecretStr(PD_TEST_ROUTING_KEY),
        pagerduty_events_url=pagerduty_receiver.url,
        pagerduty_ca_file=receivers_tls.ca_file,
    )
    pagerduty_receiver.faults.push(500, count=10_000)
    restored = threading.Timer(60.0, pagerduty_receiver.faults.clear)
    restored.start()
    outage_ends = time.monotonic() + 60.0
    client = await connect(settings, attempts=20)
    try:
        async with running_worker(client, settings):
            handle = await open_or_join(
                client, IncidentBehaviour(settings), open_request("pager-test", "prod", name="FaultDrill")
            )
            view = IncidentView.model_validate(await asyncio.wait_for(handle.result(), timeout=300))
    finally:
        restored.cancel()
    assert time.monotonic() >= outage_ends
    assert pagerduty_receiver.attempts > len(pagerduty_receiver.events), "500s were answered and retried"
    triggers = [e for e in pagerduty_receiver.events if e["event_action"] == "trigger"]
    # One trigger per paging event of the incident (opened, then needs a human), each exactly once.
    sent = [d for d in view.deliveries if d.channel == "pagerduty" and d.sent]
    assert len(triggers) == len(sent) >= 1
    assert len({e["dedup_key"] for e in triggers}) == 1
    assert len({e["payload"]["summary"] + str(e["payload"].get("custom_details")) for e in triggers}) == len(
        triggers
    )
