"""The closed loop on real parts: cluster, Temporal, worker, API, simulated service, Prometheus and
Alertmanager with the shipped rules, PagerDuty and Slack receivers.

A bad deploy reaches backout through a real alert and is rolled back exactly once; a second bad
deploy during an incident joins it; a flapping alert never causes a second rollback.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from devstack.demo import workloads
from devstack.demo.stack import (
    API_TOKEN,
    GOLDEN_MANIFEST,
    SENDER_TOKEN,
    SERVICE,
    Stack,
    StackOptions,
    running_stack,
)
from evals.execute import execute_run
from evals.golden import golden_path, load_golden_set, load_manifest
from evals.store import EvalStore
from incidents.models import TERMINAL_STATES, IncidentView

pytestmark = [pytest.mark.e2e, pytest.mark.kube, pytest.mark.temporal, pytest.mark.timeout(900)]

BAD_PROMPT = "prompt-v7-terse"
BAD_CORPUS = "corpus-2026-11-28-truncated"


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    options = StackOptions(
        state_dir=tmp_path_factory.mktemp("closed-loop"),
        bad_prompts=[BAD_PROMPT],
        bad_corpora=[BAD_CORPUS],
        settle_s=8.0,
        cooldown_s=45.0,
    )
    async with running_stack(options) as running:
        traffic_stop = asyncio.Event()
        traffic = asyncio.create_task(_traffic(running, traffic_stop))
        # A golden-set baseline, so verification re-runs the set against it.
        manifest = load_manifest(GOLDEN_MANIFEST)
        run_ids = []
        for _ in range(3):
            _, summary, _ = await execute_run(
                GOLDEN_MANIFEST, running.settings.state_dir, endpoint=running.simservice_url
            )
            run_ids.append(summary.run_id)
        EvalStore(running.settings.state_dir, manifest.name).pin_baseline(run_ids, runs=3)
        await asyncio.sleep(20)  # healthy history in Prometheus before anything changes
        try:
            yield running
        finally:
            traffic_stop.set()
            await traffic


async def _traffic(stack: Stack, stop: asyncio.Event) -> None:
    manifest = load_manifest(GOLDEN_MANIFEST)
    items = load_golden_set(golden_path(GOLDEN_MANIFEST, manifest))
    rng = random.Random(3)
    async with httpx.AsyncClient(base_url=stack.simservice_url, timeout=10) as http:
        while not stop.is_set():
            item = rng.choice(items)
            content = item.input if isinstance(item.input, str) else item.input[-1].content
            with contextlib.suppress(httpx.HTTPError):
                await http.post(
                    "/v1/chat/completions",
                    json={"model": manifest.model, "messages": [{"role": "user", "content": content}]},
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.2)


async def _runs_of_incident(client: Client, incident_id: str) -> list[Any]:
    return [run async for run in client.list_workflows(f'WorkflowId = "{incident_id}"')]


async def _incident_for_service(stack: Stack, timeout_s: float = 180) -> str:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {API_TOKEN}"}
    ) as http:
        while time.monotonic() < deadline:
            listing = (await http.get("/v1/incidents", params={"limit": 50})).json()["incidents"]
            for item in listing:
                if item["service"] == SERVICE and item["status"] == "RUNNING":
                    return str(item["id"])
            await asyncio.sleep(1)
    pytest.fail(f"no running incident for {SERVICE} within {timeout_s}s")


async def _wait_terminal(stack: Stack, incident_id: str, timeout_s: float = 240) -> IncidentView:
    handle = stack.client.get_workflow_handle(incident_id)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        view = await handle.query("view", result_type=IncidentView)
        if view.state in TERMINAL_STATES:
            return view
        await asyncio.sleep(1)
    pytest.fail(f"incident {incident_id} not finished within {timeout_s}s: {view.state}")


async def _closed(stack: Stack, incident_id: str) -> IncidentView:
    result = await asyncio.wait_for(stack.client.get_workflow_handle(incident_id).result(), timeout=120)
    return IncidentView.model_validate(result)


async def _pagerduty_actions_ending(
    stack: Stack, last: str, timeout_s: float = 30
) -> list[tuple[str, str | None]]:
    """The PagerDuty receiver's actions once the last one is `last`, or as they are at the deadline."""
    deadline = time.monotonic() + timeout_s
    actions = stack.paging.pagerduty.actions()
    while (not actions or actions[-1][0] != last) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        actions = stack.paging.pagerduty.actions()
    return actions


def _prompt_version(stack: Stack) -> str:
    data = (
        stack.apis.core.read_namespaced_config_map(workloads.PROMPT_CONFIGMAP, workloads.NAMESPACE).data or {}
    )
    return str(data.get("prompt_version"))


def _rollbacks(view: IncidentView) -> list[str]:
    return [a.target or "" for a in view.actions if a.action == "rollback" and a.outcome == "Successful"]


def _flap(status: str) -> dict[str, Any]:
    labels = {
        "alertname": "LLMErrorBudgetBurn",
        "service": SERVICE,
        "namespace": workloads.NAMESPACE,
        "severity": "critical",
    }
    return {
        "version": "4",
        "groupKey": '{}:{namespace="demo", service="rag-api"}',
        "status": status,
        "receiver": "backout",
        "groupLabels": {"namespace": workloads.NAMESPACE, "service": SERVICE},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {},
                "startsAt": "2026-11-28T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-28T00:01:00Z",
                "fingerprint": "flap0000000001",
            }
        ],
    }


async def test_bad_deploy_is_rolled_back_once_through_a_real_alert(stack: Stack) -> None:
    await asyncio.to_thread(workloads.set_corpus, stack.apis, "corpus-2026-11-27")  # benign, earlier
    await asyncio.sleep(20)
    await asyncio.to_thread(workloads.set_prompt, stack.apis, BAD_PROMPT, workloads.BAD_PROMPT)
    incident_id = await _incident_for_service(stack)
    view = await _wait_terminal(stack, incident_id)

    # A real alert, the right culprit, exactly that change undone, verified, resolved.
    assert view.state == "recovered", "\n".join(e.message for e in view.timeline)
    assert any(a.labels.get("alertname") == "RagRetrievalPrecisionLow" for a in view.alerts)
    assert view.attribution is not None and view.attribution.ranking
    assert view.attribution.ranking[0].change_id.startswith(
        f"k8s:configmap:{workloads.NAMESPACE}/{workloads.PROMPT_CONFIGMAP}:"
    )
    assert len(_rollbacks(view)) == 1
    assert _prompt_version(stack) == "prompt-v1"
    # The state turns recovered before its page goes out: give the resolve its moment.
    actions = await _pagerduty_actions_ending(stack, "resolve")
    keys = {key for _, key in actions}
    assert len(keys) == 1, actions
    assert [action for action, _ in actions].count("trigger") == 1
    assert [action for action, _ in actions][-1] == "resolve"
    assert len(stack.paging.pagerduty.change_events) == 1

    # A flapping alert on the same service: fires, resolves, fires again within seconds.
    async with httpx.AsyncClient(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {SENDER_TOKEN}"}
    ) as http:
        for status in ("firing", "resolved", "firing"):
            answer = await http.post("/v1/alerts/alertmanager", json=_flap(status))
            assert answer.status_code == 202
            assert answer.json()["incident_id"] == incident_id
    # A second bad deploy while the incident is still open joins it.
    await asyncio.to_thread(workloads.set_corpus, stack.apis, BAD_CORPUS)

    closed = await _closed(stack, incident_id)
    assert len(await _runs_of_incident(stack.client, incident_id)) == 1, "no second incident was opened"
    assert len(_rollbacks(closed)) == 1, "the flap and the second deploy never caused a second rollback"
    assert closed.state == "needs_human"
    assert any("fired again" in entry.message for entry in closed.timeline)
