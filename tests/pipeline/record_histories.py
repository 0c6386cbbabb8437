"""Record workflow histories for the replay test, one per path an incident can take.

    .venv/bin/python -m tests.pipeline.record_histories            # records the missing ones
    .venv/bin/python -m tests.pipeline.record_histories --list     # what is recorded, what is missing

Each path runs on real parts: a Temporal dev server, the real worker (every workflow and activity
of `worker.registry`), the local Kubernetes control plane (Deployments really roll out and back),
the local PagerDuty and Slack receivers, and for the eval trigger the simulated service reading its
versions from the cluster. The runbooks that choose each path are in `history_runbooks/`.

A recorded history is a contract with incidents in flight: this tool never overwrites one. A change
of the workflows' command sequence is guarded with `workflow.patched` so that every committed
history still replays (tests/pipeline/test_replay.py); it is never answered by re-recording.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from kubernetes.client import V1Namespace, V1ObjectMeta
from kubernetes.client.exceptions import ApiException
from temporalio.client import Client, WorkflowHandle

from activities.incidents import IncidentBehaviour, open_or_join
from activities.kube.client import KubeApis, apis_from_kubeconfig
from api.sources.alertmanager import AlertmanagerPayload
from config import Settings
from devstack.cluster.local import LocalCluster
from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.server import make_loopback_tls
from devstack.receivers.slack import SlackReceiver
from evals.contracts import EvalWorkflowInput, EvalWorkflowResult
from incidents.models import ApprovalDecision, IncidentView, OpenIncidentRequest
from tests.fixtures.simservice import SimService, start_simservice, stop_simservice
from tests.fixtures.temporal import running_worker, start_dev_server, until_view
from tests.kube.helpers import assert_rolled_out, create_deployment, deployment_body, set_image, wait_until
from tests.pipeline.payloads import alert, notification
from worker.temporal_client import connect

HISTORIES = Path(__file__).parent / "histories"
RUNBOOKS = Path(__file__).parent / "history_runbooks"
GOLDEN_MANIFEST = Path(__file__).resolve().parents[2] / "evals" / "sets" / "orbitdesk" / "manifest.yaml"
APPROVER = "U0ALICE01"
SLACK_TOKEN = "xoxb-history-recorder"
PD_ROUTING_KEY = "R0UT1NGKEY0000000000000000000001"
WAIT_S = 300.0


@dataclass
class Recording:
    """The real parts one recording session shares."""

    client: Client
    settings: Settings
    apis: KubeApis
    cluster: LocalCluster
    workdir: Path

    @property
    def behaviour(self) -> IncidentBehaviour:
        return IncidentBehaviour(self.settings)


Recorded = dict[str, WorkflowHandle[Any, Any]]


def _signal(service: str, namespace: str, alertname: str, status: str = "firing") -> OpenIncidentRequest:
    """What the Alertmanager webhook hands to open_or_join for one alert, starting now."""
    starts = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    body = notification(
        [alert(name=alertname, service=service, namespace=namespace, status=status, starts_at=starts)],
        group=service,
    )
    payload = AlertmanagerPayload.model_validate(body)
    return OpenIncidentRequest(key=payload.incident_key(), signal=payload.to_signal(datetime.now(UTC)))


def _create_namespace(apis: KubeApis, name: str) -> str:
    apis.core.create_namespace(V1Namespace(metadata=V1ObjectMeta(name=name)))
    wait_until(lambda: _has_default_account(apis, name), timeout_s=30)
    return name


def _has_default_account(apis: KubeApis, namespace: str) -> bool:
    try:
        apis.core.read_namespaced_service_account("default", namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


async def _namespace(rec: Recording, prefix: str) -> str:
    name = prefix if prefix == "demo" else f"{prefix}-{uuid.uuid4().hex[:5]}"
    return await asyncio.to_thread(_create_namespace, rec.apis, name)


async def _bad_deploy(rec: Recording, namespace: str, service: str) -> None:
    """A Deployment at revision 1 (good image), then revision 2 (the bad image): the culprit."""
    await asyncio.to_thread(create_deployment, rec.apis, namespace, service, f"{service}:v1")
    await asyncio.to_thread(set_image, rec.apis, namespace, service, f"{service}:v2", "deploy v2")


async def _finished(handle: WorkflowHandle[Any, Any], expected_state: str) -> None:
    view = IncidentView.model_validate(await asyncio.wait_for(handle.result(), timeout=WAIT_S))
    if view.state != expected_state:
        lines = "\n".join(f"  {e.kind} {e.step}: {e.message}" for e in view.timeline)
        raise AssertionError(f"{handle.id} ended {view.state}, wanted {expected_state}:\n{lines}")


async def _open(rec: Recording, namespace: str, service: str, alertname: str) -> WorkflowHandle[Any, Any]:
    return await open_or_join(rec.client, rec.behaviour, _signal(service, namespace, alertname))


async def _resolve(
    rec: Recording, handle: WorkflowHandle[Any, Any], namespace: str, service: str, name: str
) -> None:
    await handle.signal("add_signal", _signal(service, namespace, name, status="resolved").signal)


def _verifying(view: IncidentView) -> bool:
    return any(record.action == "verify_rollout" for record in view.actions)


async def _decide_approval(handle: WorkflowHandle[Any, Any], approve: bool) -> None:
    await until_view(handle, "asking for approval", lambda view: view.approval is not None, WAIT_S)
    view = await handle.query("view", result_type=IncidentView)
    assert view.approval is not None
    decision = ApprovalDecision(
        request_id=view.approval.request_id,
        approve=approve,
        user=APPROVER,
        source="api",
        reason=None if approve else "the v2 image is not the cause; checking the database first",
    )
    await handle.execute_update("approve", decision)


# --- the paths ----------------------------------------------------------------------------------


async def _culprit_incident(
    rec: Recording, prefix: str, alertname: str
) -> tuple[str, WorkflowHandle[Any, Any]]:
    """A namespace of its own, a bad deploy of `chat` in it, and the incident its alert opens."""
    namespace = await _namespace(rec, prefix)
    await _bad_deploy(rec, namespace, "chat")
    return namespace, await _open(rec, namespace, "chat", alertname)


async def approve(rec: Recording) -> Recorded:
    namespace, handle = await _culprit_incident(rec, "h-approve", "HistoryApprove")
    await _decide_approval(handle, approve=True)
    await until_view(handle, "verifying the rollout", _verifying, WAIT_S)
    await _resolve(rec, handle, namespace, "chat", "HistoryApprove")
    await _finished(handle, "recovered")
    return {"approve": handle}


async def reject(rec: Recording) -> Recorded:
    _, handle = await _culprit_incident(rec, "h-reject", "HistoryReject")
    await _decide_approval(handle, approve=False)
    await _finished(handle, "needs_human")
    return {"reject": handle}


def _left_alone(
    name: str, prefix: str, alertname: str, ends: str
) -> Callable[[Recording], Awaitable[Recorded]]:
    """A path the incident takes by itself once its alert fires (nobody answers, nothing resolves)."""

    async def path(rec: Recording) -> Recorded:
        _, handle = await _culprit_incident(rec, prefix, alertname)
        await _finished(handle, ends)
        return {name: handle}

    return path


async def rollback_verified_then_cap_reached(rec: Recording) -> Recorded:
    """Two services in one namespace whose budget is one rollback an hour: the first incident rolls
    back and is verified; the second one's rollback is refused by the cap and a human is paged."""
    namespace = await _namespace(rec, "h-cap")
    await _bad_deploy(rec, namespace, "svc-a")
    first = await _open(rec, namespace, "svc-a", "HistoryRollback")
    await until_view(first, "verifying the rollout", _verifying, WAIT_S)
    await _resolve(rec, first, namespace, "svc-a", "HistoryRollback")
    await _finished(first, "recovered")
    await _bad_deploy(rec, namespace, "svc-b")
    second = await _open(rec, namespace, "svc-b", "HistoryRollback")
    await _finished(second, "needs_human")
    view = IncidentView.model_validate(await second.result())
    assert any("cap max_rollbacks_per_namespace_per_hour" in r.message for r in view.actions), view.actions
    return {"rollback_verified": first, "rollback_cap_reached": second}


def _model_deployment(apis: KubeApis, namespace: str, model_version: str) -> None:
    body = deployment_body("rag-api", "example.invalid/llm:1", replicas=1)
    body["spec"]["template"]["metadata"]["annotations"] = {"backout.dev/model-version": model_version}
    apis.apps.create_namespaced_deployment(namespace, body)
    assert_rolled_out(apis, namespace, "rag-api")


def _deploy_model(apis: KubeApis, namespace: str, model_version: str) -> None:
    patch = {
        "spec": {"template": {"metadata": {"annotations": {"backout.dev/model-version": model_version}}}}
    }
    apis.apps.patch_namespaced_deployment("rag-api", namespace, patch)
    assert_rolled_out(apis, namespace, "rag-api")


async def _wait_model(service: SimService, version: str) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        for _ in range(300):
            if (await http.get(f"{service.url}/healthz")).json()["versions"]["model_version"] == version:
                return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"simservice never served {version}")


async def eval_trigger(rec: Recording) -> Recorded:
    """A scheduled-style golden-set run after a bad model deploy opens the incident; the model
    rollback is verified by running the golden set again."""
    namespace = await _namespace(rec, "demo")  # the namespace the shipped golden set names
    await asyncio.to_thread(_model_deployment, rec.apis, namespace, "llm-v1")
    service = start_simservice(
        rec.workdir,
        "--kube-namespace",
        namespace,
        "--kube-deployment",
        "rag-api",
        "--kubeconfig",
        str(rec.cluster.kubeconfig),
        "--poll-interval",
        "0.5",
        "--latency-scale",
        "0",
        "--seed",
        "7",
        file_source=False,
    )
    try:
        await _wait_model(service, "llm-v1")
        request = EvalWorkflowInput(
            manifest_path=str(GOLDEN_MANIFEST), state_dir=str(rec.settings.state_dir), endpoint=service.url
        )

        async def run_eval() -> tuple[WorkflowHandle[Any, Any], EvalWorkflowResult]:
            handle = await rec.client.start_workflow(
                "EvalWorkflow",
                request,
                id=f"eval-history-{uuid.uuid4().hex[:8]}",
                task_queue=rec.settings.task_queue,
                result_type=EvalWorkflowResult,
                execution_timeout=timedelta(minutes=10),
            )
            return handle, await asyncio.wait_for(handle.result(), timeout=WAIT_S)

        for _ in range(3):  # the baseline
            await run_eval()
        await asyncio.to_thread(_deploy_model, rec.apis, namespace, "llm-v2-bad")
        await _wait_model(service, "llm-v2-bad")
        eval_handle, result = await run_eval()
        if not (result.regression and result.incident_id):
            raise AssertionError(f"the bad model did not regress the golden set: {result}")
        incident = rec.client.get_workflow_handle(result.incident_id)
        await _finished(incident, "recovered")
    finally:
        stop_simservice(service)
    return {"eval_trigger_eval_workflow": eval_handle, "eval_trigger": incident}


PATHS: dict[str, tuple[tuple[str, ...], Callable[[Recording], Awaitable[Recorded]]]] = {
    "approve": (("approve",), approve),
    "reject": (("reject",), reject),
    "approval_timeout": (
        ("approval_timeout_escalate",),
        _left_alone("approval_timeout_escalate", "h-timeout", "HistoryApprovalTimeout", "needs_human"),
    ),
    "rollback": (("rollback_verified", "rollback_cap_reached"), rollback_verified_then_cap_reached),
    "verify_failed": (
        ("verify_failed_escalate",),
        _left_alone("verify_failed_escalate", "h-verify", "HistoryVerifyFails", "needs_human"),
    ),
    "shadow": (("shadow",), _left_alone("shadow", "h-shadow", "HistoryShadow", "shadowed")),
    "freeze": (("freeze_window",), _left_alone("freeze_window", "h-freeze", "HistoryFreeze", "needs_human")),
    "eval": (("eval_trigger_eval_workflow", "eval_trigger"), eval_trigger),
}


async def _save(name: str, handle: WorkflowHandle[Any, Any]) -> None:
    path = HISTORIES / f"{name}.json"
    if path.exists():
        raise FileExistsError(f"{path} is committed; histories are never re-recorded")
    history = await handle.fetch_history()
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
    print(f"recorded {name}: {len(history.events)} events")


async def record(wanted: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="backout-histories-") as tmp:
        workdir = Path(tmp)
        server = start_dev_server(None, workdir / "temporal.log")
        cluster = LocalCluster(workdir / "cluster")
        tls = make_loopback_tls(workdir / "tls")
        pagerduty = PagerDutyReceiver(tls, routing_keys={PD_ROUTING_KEY}).start()
        slack = SlackReceiver(token=SLACK_TOKEN).start()
        try:
            cluster.start(timeout_s=180)
            apis = apis_from_kubeconfig(cluster.kubeconfig)
            settings = Settings(
                state_dir=workdir / "state",
                temporal_address=server.address,
                task_queue=f"histories-{uuid.uuid4().hex[:8]}",
                incident_settle_s=1.0,
                incident_cooldown_s=0.0,
                kubeconfig=cluster.kubeconfig,
                runbook_dir=RUNBOOKS,
                max_rollbacks_per_namespace_per_hour=1,
                pagerduty_routing_key=PD_ROUTING_KEY,  # type: ignore[arg-type]
                pagerduty_events_url=pagerduty.url,
                pagerduty_ca_file=tls.ca_file,
                slack_token=SLACK_TOKEN,  # type: ignore[arg-type]
                slack_api_url=f"{slack.url}/api/",
                slack_channel="#incidents",
            )
            client = await connect(settings, attempts=20)
            rec = Recording(client=client, settings=settings, apis=apis, cluster=cluster, workdir=workdir)
            async with running_worker(client, settings):
                results = await asyncio.gather(*(PATHS[name][1](rec) for name in wanted))
            HISTORIES.mkdir(exist_ok=True)
            for recorded in results:
                for history_name, handle in recorded.items():
                    await _save(history_name, handle)
        finally:
            slack.stop()
            pagerduty.stop()
            cluster.stop()
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="show recorded and missing histories")
    parser.add_argument(
        "paths", nargs="*", help=f"paths to record (default: the missing ones of {list(PATHS)})"
    )
    args = parser.parse_args()
    missing = [
        name
        for name, (histories, _) in PATHS.items()
        if not all((HISTORIES / f"{history}.json").exists() for history in histories)
    ]
    if args.list:
        for path in sorted(HISTORIES.glob("*.json")):
            print(f"recorded  {path.stem}")
        for name in missing:
            print(f"missing   {', '.join(PATHS[name][0])}")
        return
    wanted = args.paths or missing
    for name in wanted:
        if name not in PATHS:
            parser.error(f"unknown path {name!r} (known: {', '.join(PATHS)})")
        present = [h for h in PATHS[name][0] if (HISTORIES / f"{h}.json").exists()]
        if present:
            parser.error(f"{name}: {', '.join(present)} already recorded; histories are never re-recorded")
    if wanted:
        asyncio.run(record(wanted))


if __name__ == "__main__":
    main()
