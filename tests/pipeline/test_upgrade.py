"""Upgrade drill: incidents started by the previous release finish on this one.

The previous release is the newest commit whose `workflows/` differs from the code under test, checked
out as a git worktree. Its `backout up` (API and worker, one process, its own PYTHONPATH) takes real
Alertmanager notifications and runs the incidents until one waits for a human's approval and one
waits for its alert to resolve after a real rollback; then it is stopped, as a rolling deploy stops
it, and a worker of the current code finishes both on the same task queue.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.kube.client import KubeApis
from api.sources.alertmanager import AlertmanagerPayload
from config import Settings
from incidents.models import ApprovalDecision, IncidentView
from tests.fixtures.temporal import backout_process, running_worker, stop_process, until_view, wait_healthy
from tests.kube.helpers import create_deployment, current_images, set_image
from tests.pipeline.payloads import alert, notification
from worker.temporal_server import free_port

pytestmark = [pytest.mark.temporal, pytest.mark.kube, pytest.mark.slow, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = Path(__file__).parent / "history_runbooks"
APPROVER = "U0ALICE01"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


def previous_release() -> str:
    """The newest commit whose workflows/ differs from the workflows/ under test."""
    for commit in _git("log", "--format=%H", "--", "workflows/").splitlines():
        unchanged = subprocess.run(
            ["git", "diff", "--quiet", commit, "--", "workflows/"], cwd=REPO, check=False
        )
        if unchanged.returncode != 0:
            return commit
    raise AssertionError("no earlier version of workflows/ in this clone's history")


@pytest.fixture(scope="module")
def previous_code(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    checkout = tmp_path_factory.mktemp("previous-release") / "backout"
    _git("worktree", "add", "--detach", str(checkout), previous_release())
    try:
        yield checkout
    finally:
        _git("worktree", "remove", "--force", str(checkout))


def _module_file(code_dir: Path, module: str) -> Path:
    found = subprocess.run(
        [sys.executable, "-c", f"import {module} as m; print(m.__file__)"],
        cwd=code_dir,
        env={"PYTHONPATH": str(code_dir), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(found.stdout.strip())


def _notification(namespace: str, service: str, alertname: str, status: str = "firing") -> dict[str, Any]:
    starts = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    fired = alert(name=alertname, service=service, namespace=namespace, status=status, starts_at=starts)
    return notification([fired], group=service)


async def test_incidents_started_by_the_previous_release_finish_on_this_one(
    previous_code: Path,
    temporal_client: Client,
    backout_settings: Settings,
    kube_settings: Settings,
    kube_apis: KubeApis,
    kube_namespace: str,
) -> None:
    assert _module_file(previous_code, "workflows.incident").is_relative_to(previous_code)
    namespace = kube_namespace
    for service in ("chat", "search"):
        await asyncio.to_thread(create_deployment, kube_apis, namespace, service, f"{service}:v1")
        await asyncio.to_thread(set_image, kube_apis, namespace, service, f"{service}:v2", "deploy v2")
    settings = backout_settings.model_copy(
        update={
            "kubeconfig": kube_settings.kubeconfig,
            "allowed_namespaces": [namespace],  # named: what both releases read the same way
            "runbook_dir": RUNBOOKS,
            "incident_settle_s": 1.0,
            "api_port": free_port(),
        }
    )
    api = f"http://127.0.0.1:{settings.api_port}"
    old = backout_process(settings, "up", code_dir=previous_code, log_name="previous-release.log")
    try:
        await wait_healthy(api, old, settings.state_dir / "previous-release.log")
        async with httpx.AsyncClient(base_url=api, timeout=10) as http:
            opened = {}
            for service, alertname in (("chat", "HistoryApprove"), ("search", "HistoryRollback")):
                answer = await http.post(
                    "/v1/alerts/alertmanager", json=_notification(namespace, service, alertname)
                )
                assert answer.status_code == 202, answer.text
                opened[service] = str(answer.json()["incident_id"])
        awaiting = await until_view(
            temporal_client.get_workflow_handle(opened["chat"]),
            "awaiting approval",
            lambda v: v.state == "awaiting_approval",
        )
        await until_view(
            temporal_client.get_workflow_handle(opened["search"]),
            "rolled back, verifying",
            lambda v: any(a.action == "verify_rollout" for a in v.actions),
        )
    finally:
        stop_process(old, timeout_s=30)

    async with running_worker(temporal_client, settings):
        approval = awaiting.approval
        assert approval is not None
        decision = ApprovalDecision(request_id=approval.request_id, approve=True, user=APPROVER, source="api")
        chat = temporal_client.get_workflow_handle(opened["chat"])
        assert await chat.execute_update("approve", decision, result_type=str) == "approved"
        await until_view(
            temporal_client.get_workflow_handle(opened["chat"]),
            "rolled back, verifying",
            lambda v: any(a.action == "verify_rollout" for a in v.actions),
        )
        for service, alertname in (("chat", "HistoryApprove"), ("search", "HistoryRollback")):
            resolved = AlertmanagerPayload.model_validate(
                _notification(namespace, service, alertname, status="resolved")
            )
            await temporal_client.get_workflow_handle(opened[service]).signal(
                "add_signal", resolved.to_signal(datetime.now(UTC))
            )
        views = {
            service: IncidentView.model_validate(
                await asyncio.wait_for(temporal_client.get_workflow_handle(incident).result(), timeout=120)
            )
            for service, incident in opened.items()
        }
    for service, view in views.items():
        timeline = "\n".join(f"{e.kind} {e.step}: {e.message}" for e in view.timeline)
        assert view.state == "recovered", timeline
        rollbacks = [a for a in view.actions if a.action == "rollback" and a.outcome == "Successful"]
        assert len(rollbacks) == 1, timeline
        assert current_images(kube_apis, namespace, service) == [f"{service}:v1"]
        workers = await _workflow_task_workers(temporal_client, opened[service])
        assert len(workers) >= 2 and workers[-1] == temporal_client.identity, workers


async def _workflow_task_workers(client: Client, incident_id: str) -> list[str]:
    """The identities of the workers that completed the incident's workflow tasks, in order, once each."""
    history = await client.get_workflow_handle(incident_id).fetch_history()
    seen: list[str] = []
    for event in history.events:
        if event.HasField("workflow_task_completed_event_attributes"):
            identity = event.workflow_task_completed_event_attributes.identity
            if not seen or seen[-1] != identity:
                seen.append(identity)
    return seen
