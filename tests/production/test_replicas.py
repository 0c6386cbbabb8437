"""Many replicas, one truth (issue 15 item 4): two `backout api` processes behind one address and
three `backout worker` processes on Temporal on PostgreSQL, with the local control plane and the
PagerDuty and Slack receivers.

- HA twins posted to different API replicas open one incident and roll back once.
- A signed Slack click accepted by one replica is refused as a replay by the other and through the
  shared address; the decision counts once.
- During an alert storm one worker and one API process are SIGKILLed: no notification is lost (the
  sender retries transport errors and 5xx as Alertmanager does), one incident per group holds
  every alert, each service is rolled back once (the namespace's action log), and each page and
  Slack message went out once (counted at the receivers against what the incidents recorded).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from activities.changes_store import ChangeStore
from activities.kube.client import KubeApis
from config import Settings
from devstack.bench.runner import RetryPolicy, send_all
from devstack.cluster.local import LocalCluster
from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.server import TlsFiles
from devstack.receivers.slack import SlackReceiver
from devstack.temporal_sql import TemporalSqlState
from incidents.bundle import IncidentBundle
from incidents.models import TERMINAL_STATES, IncidentView
from tests.fixtures.temporal import settings_env
from tests.kube.helpers import current_images
from tests.paging.real_incident import (
    APPROVER,
    OPERATOR_TOKEN,
    RealStack,
    click_body,
    signed,
    stack_settings,
    write_owners,
)
from tests.production.replicated import (
    APPROVAL_DRILL,
    REPORTER_TOKEN,
    SENDER_TOKEN,
    Replicated,
    post,
    replica_settings,
    replicated,
    runbook_dir,
    sent_deliveries,
    unique_services,
)
from tests.production.test_temporal_sql import drill_settings

pytestmark = [pytest.mark.temporal, pytest.mark.kube, pytest.mark.slow, pytest.mark.timeout(900)]

WAIT_S = 240.0


@pytest.fixture
async def topology(
    production_temporal: TemporalSqlState,
    kube_cluster: LocalCluster,
    kube_apis: KubeApis,
    kube_namespace: str,
    receivers_tls: TlsFiles,
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
    tmp_path: Path,
) -> AsyncIterator[Replicated]:
    base = stack_settings(
        drill_settings(production_temporal, tmp_path / "state"),
        kube_cluster.kubeconfig,
        kube_namespace,
        write_owners(tmp_path),
        receivers_tls,
        pagerduty_receiver,
        slack_receiver,
        runbook_dir=runbook_dir(tmp_path / "runbooks"),
    )
    settings: Settings = replica_settings(production_temporal, base)
    async with replicated(
        settings, kube_apis, kube_namespace, slack_receiver, pagerduty_receiver, tmp_path / "logs"
    ) as stack:
        yield stack
        await _terminate_running(stack)


async def _terminate_running(stack: Replicated) -> None:
    query = f'TaskQueue = "{stack.settings.task_queue}" AND ExecutionStatus = "Running"'
    async for execution in stack.client.list_workflows(query):
        await stack.client.get_workflow_handle(execution.id, run_id=execution.run_id).terminate("test over")


async def _until_rollback_decided(stack: Replicated, incident_id: str, deadline: float) -> IncidentView:
    while True:
        view = await stack.view(incident_id)
        if any(r.action == "rollback" for r in view.actions) or view.state in TERMINAL_STATES:
            return view
        assert time.monotonic() < deadline, f"{incident_id}: no rollback decided: {view.state}"
        await asyncio.sleep(0.5)


async def _resolve_all(stack: Replicated, services: list[str], instances: int, url: str) -> None:
    """Once each incident has rolled back, its alerts resolve (sent once; retried like Alertmanager)."""
    deadline = time.monotonic() + WAIT_S
    for service in services:
        await _until_rollback_decided(stack, stack.incident_id(service), deadline)
    for service in services:
        for _ in range(20):
            try:
                answer = await post(url, stack.resolved(service, instances))
                if answer.status_code < 500:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(1)
        assert answer.status_code == 202, answer.text


def _assert_acted_once(stack: Replicated, views: list[IncidentView], services: list[str]) -> None:
    """One rollback per service in the action log and on the Deployment; every page and Slack post
    the receivers got is one the incidents recorded sending (a retried send that had already gone
    out would show as one more at the receiver)."""
    rollbacks = stack.rollbacks_logged()
    assert rollbacks == Counter({f"deployment/{stack.namespace}/{s}": 1 for s in services}), rollbacks
    for service in services:
        assert current_images(stack.apis, stack.namespace, service) == [f"{service}:v1"]
    for view in views:
        assert [a.outcome for a in view.actions if a.action == "rollback"] == ["Successful"], view.id
        pages = stack.pages(view.id)
        assert pages.count("trigger") == 1, (view.id, pages)
    pd_recorded = sent_deliveries(views, "pagerduty")
    pd_events = sum(n for event, n in pd_recorded.items() if event != "rollback_performed")
    assert len(stack.pagerduty.events) == pd_events, (stack.pagerduty.actions(), pd_recorded)
    assert len(stack.pagerduty.change_events) == pd_recorded["rollback_performed"]
    slack_recorded = sum(sent_deliveries(views, "slack").values())
    assert len(stack.slack.calls_of("chat.postMessage")) == slack_recorded
    assert len(stack.slack.heads()) == len(views), [m.text for m in stack.slack.heads()]


async def test_ha_twins_at_different_replicas_open_one_incident_and_roll_back_once(
    topology: Replicated,
) -> None:
    stack = topology
    services = unique_services(4, "twin")
    await stack.bad_deploys(services)
    first, second = stack.replicas.api_urls
    # Each Alertmanager replica's copy reaches another API replica, at the same moment.
    twins = [stack.storm([service], batches=1)[:2] for service in services]
    answers = await asyncio.gather(
        *(post(url, copy.body) for pair in twins for url, copy in zip((first, second), pair, strict=True))
    )
    assert [a.status_code for a in answers] == [202] * len(answers), [a.text for a in answers]
    ids = [stack.incident_id(service) for service in services]
    assert {a.json()["incident_id"] for a in answers} == set(ids)
    await _resolve_all(stack, services, instances=1, url=second)
    views = [await stack.finished(incident_id, WAIT_S) for incident_id in ids]
    assert [view.state for view in views] == ["recovered"] * len(views), [v.timeline for v in views]
    assert [await stack.runs_of(incident_id) for incident_id in ids] == [1] * len(ids)
    _assert_acted_once(stack, views, services)


async def test_a_replayed_slack_click_is_accepted_by_no_replica(topology: Replicated) -> None:
    stack = topology
    [service] = unique_services(1, "approve")
    await stack.bad_deploys([service])
    body = stack.storm([service], batches=1, alertname=APPROVAL_DRILL)[0].body
    assert (await post(stack.replicas.url, body)).status_code == 202
    incident_id = stack.incident_id(service)
    deadline = time.monotonic() + WAIT_S
    while (view := await stack.view(incident_id)).approval is None:
        assert time.monotonic() < deadline, view.timeline
        await asyncio.sleep(0.3)
    assert view.approval is not None
    paging = RealStack(
        stack.client, stack.settings, stack.apis, stack.namespace, stack.slack, stack.pagerduty
    )
    message = await paging.approval_message(view.approval.request_id)
    click = click_body(message, APPROVER)
    headers = signed(click)
    first, second = stack.replicas.api_urls
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        accepted = await http.post(f"{first}/v1/slack/interactions", content=click, headers=headers)
        assert accepted.status_code == 200 and accepted.json()["ok"], accepted.text
        for url in (second, stack.replicas.url, first):
            replayed = await http.post(f"{url}/v1/slack/interactions", content=click, headers=headers)
            assert replayed.status_code == 401 and replayed.json()["error"] == "replayed request", (
                url,
                replayed.text,
            )
    view = await stack.view(incident_id)
    decisions = [e.message for e in view.timeline if e.kind == "decision" and "approved by" in e.message]
    assert decisions == [f"approved by {APPROVER} via slack"], decisions


async def test_a_worker_and_an_api_process_killed_in_an_alert_storm_lose_nothing_and_act_once(
    topology: Replicated,
) -> None:
    stack = topology
    services = unique_services(12, "storm")
    batches = 6
    await stack.bad_deploys(services)
    plan = stack.storm(services, batches)
    answered = 0

    async def count(response: httpx.Response) -> None:
        nonlocal answered
        answered += 1

    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    async with httpx.AsyncClient(
        base_url=stack.replicas.url, timeout=30, limits=limits, trust_env=False,
        event_hooks={"response": [count]},
    ) as http:  # fmt: skip
        sending = asyncio.create_task(
            send_all(http, plan, SENDER_TOKEN, 8, RetryPolicy(first_backoff_s=0.2, window_s=180))
        )
        while answered < len(plan) // 3 and not sending.done():
            await asyncio.sleep(0.01)
        assert not sending.done(), "the storm was over before the kill"
        stack.replicas.kill_worker(0)
        stack.replicas.kill_api(0)
        report = await sending
    assert report.lost == [], report.lost[:3]
    balancer = stack.replicas.balancer
    assert balancer is not None and balancer.connections[0] > 0 and balancer.connections[1] > 0

    ids = {stack.incident_id(service) for service in services}
    assert {d.incident_id for d in report.accepted} == ids
    await _resolve_all(stack, services, instances=batches, url=stack.replicas.url)
    views = [await stack.finished(incident_id, WAIT_S) for incident_id in sorted(ids)]
    assert [view.state for view in views] == ["recovered"] * len(views), [
        (v.id, v.state, [e.message for e in v.timeline][-5:]) for v in views
    ]
    assert [await stack.runs_of(incident_id) for incident_id in sorted(ids)] == [1] * len(ids)
    for view in views:
        held = {a.fingerprint for a in view.alerts}
        wanted = {
            fp for n in plan if stack.incident_id(services[n.group]) == view.id for fp in n.fingerprints
        }
        assert held == wanted, view.id
    _assert_acted_once(stack, views, services)
    print(  # the figures of the drill, for `pytest -s`
        {
            "notifications": len(plan),
            "retries": sum(d.attempts - 1 for d in report.deliveries),
            "connections_per_api": dict(balancer.connections),
            "refused_by_killed_api": dict(balancer.refused),
            "incidents": len(views),
            "rollbacks_logged": sum(stack.rollbacks_logged().values()),
            "pagerduty_events": len(stack.pagerduty.events),
            "pagerduty_triggers": sum(a == "trigger" for a, _ in stack.pagerduty.actions()),
            "slack_posts": len(stack.slack.calls_of("chat.postMessage")),
        }
    )


async def test_a_change_reported_to_one_replica_reaches_every_replica_and_the_incident(
    topology: Replicated, tmp_path: Path
) -> None:
    """No replica shares a disk with another (each has its own state directory, like a pod): the
    reported changes and the culprit labels live in the shared store (PostgreSQL, database_url).
    A change posted at one API replica is listed by the other and ranked by the incident a worker
    opens; labels given at both replicas feed `backout attribution train`."""
    stack = topology
    services = unique_services(2, "reported")
    first, second = stack.replicas.api_urls
    reporter = {"Authorization": f"Bearer {REPORTER_TOKEN}"}
    operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    changes = [
        {
            "id": f"prompt-{service}-42",
            "service": service,
            "namespace": stack.namespace,
            "kind": "prompt",
            "started_at": datetime.now(UTC).isoformat(),
            "from_version": "p1",
            "to_version": "p2",
            "description": "prompt template p2",
        }
        for service in services
    ]
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        # Each change reported at one replica; the other knows it (same content: 200, other: 409).
        for reported_at, seen_at, change in ((first, second, changes[0]), (second, first, changes[1])):
            created = await http.post(f"{reported_at}/v1/changes", json=change, headers=reporter)
            assert created.status_code == 201, created.text
            again = await http.post(f"{seen_at}/v1/changes", json=change, headers=reporter)
            assert again.status_code == 200 and again.json()["status"] == "unchanged", again.text
            other = await http.post(
                f"{seen_at}/v1/changes", json={**change, "to_version": "p3"}, headers=reporter
            )
            assert other.status_code == 409, other.text
        for url in (first, second):
            listed = await http.get(
                f"{url}/v1/changes", params={"namespace": stack.namespace}, headers=operator
            )
            assert sorted(c["id"] for c in listed.json()["changes"]) == sorted(c["id"] for c in changes), (
                listed.text
            )

        # One incident per service, opened through the shared address: a worker (sharing no disk
        # with either API replica) collects the reported change of its service as a candidate.
        incident_ids = []
        for service in services:
            body = stack.storm([service], batches=1, alertname="ReportedChangeDrill")[0].body
            assert (await post(stack.replicas.url, body)).status_code == 202
            incident_ids.append(stack.incident_id(service))
        deadline = time.monotonic() + WAIT_S
        for incident_id, change in zip(incident_ids, changes, strict=True):
            handle = stack.client.get_workflow_handle(incident_id)
            while (bundle := await handle.query("bundle", result_type=IncidentBundle)) is None:
                assert time.monotonic() < deadline, f"{incident_id}: no bundle collected"
                await asyncio.sleep(0.3)
            assert change["id"] in [c.id for c in bundle.changes], bundle.changes

        # An operator labels each incident's culprit, one at each replica.
        for url, incident_id, change in zip((first, second), incident_ids, changes, strict=True):
            labelled = await http.post(
                f"{url}/v1/incidents/{incident_id}/culprit",
                json={"change_id": change["id"]},
                headers=operator,
            )
            assert labelled.status_code == 201, labelled.text
    store = ChangeStore.of(stack.settings)
    try:
        labels = [json.loads(label) for label in store.labels()]
    finally:
        store.close()
    mine = sorted(
        (label["incident_id"], label["change_id"]) for label in labels if label["incident_id"] in incident_ids
    )
    assert mine == sorted(zip(incident_ids, [c["id"] for c in changes], strict=True)), labels
    # No replica kept a change or a label on its own disk: they are only in the shared store.
    local = [*stack.replicas.log_dir.rglob("changes.sqlite"), *stack.replicas.log_dir.rglob("feedback.jsonl")]
    assert not local, local

    # Training reads every replica's labels from the shared store (other tests' labels may be there
    # too: the store is the session's PostgreSQL).
    trained = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "from worker.cli import main; main()", "attribution", "train",
         "--synthetic", "100", "--nuisance-per-family", "0", "--out", str(tmp_path / "model.json"), "--json"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, **settings_env(stack.settings), "BACKOUT_STATE_DIR": str(tmp_path / "train")},
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    report = json.loads(trained.stdout)
    assert report["feedback_incidents"] == len({label["incident_id"] for label in labels}) >= 2, report
