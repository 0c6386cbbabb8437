"""The way from an alert to its rollback (issue 17): the context is collected and ranked by one
local activity while the runbooks load, the opening page goes out once the first cluster change is made (and
before anything else is told), and a run of the current code replays on it.

The real IncidentWorkflow and runbook loader on a real Temporal server; stand-ins for the context,
attribution, remediation and paging activities record the order they were called in.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from activities.runbooks import LoadRunbooksRequest, load_runbooks_activity
from incidents.bundle import (
    AttributionOutput,
    IncidentBundle,
)
from incidents.models import (
    Alert,
    AttributedContext,
    ContextRequest,
    ContextResult,
    IncidentSignal,
    NotifyRequest,
    NotifyResult,
)
from incidents.remediation import RemediationRequest, RemediationResult
from runbooks.models import Runbook
from tests.runbooks.incident_runs import (
    image_change,
    incident_params,
    standin_context,
    standin_ranking,
    start_incident,
)
from worker.sandbox import sandbox_runner
from worker.temporal_server import TemporalDevServer
from workflows.incident import (
    CONTEXT_WITH_ATTRIBUTION_PATCH,
    OPENED_AFTER_ACTION_PATCH,
    RUNBOOKS_WITH_CONTEXT_PATCH,
    IncidentWorkflow,
)

pytestmark = [pytest.mark.temporal]

ROLLBACK = """
name: hot-path-rollback
mode: auto
match:
  alertnames: [HotPath]
start: roll_back
nodes:
  roll_back:
    actions:
      - rollback:
          kinds: [image]
      - notify:
          message: rolled back
"""

PAGE_ONLY = """
name: hot-path-page
mode: auto
match:
  alertnames: [HotPath]
start: page
nodes:
  page:
    actions:
      - page:
          team: chat
"""


NAMESPACE = "shop"


class Calls:
    """Stand-in activities; `order` is what they were asked, in order (notify calls by event)."""

    def __init__(self, namespace: str, name: str) -> None:
        self.order: list[str] = []
        self.change = image_change(namespace, name)
        # Awaited by the notify stand-ins before they answer a page of that event, once per page.
        self.before_page: dict[str, Callable[[], Awaitable[None]]] = {}
        # Set when the runbooks start loading: the context stand-in waits for it (loaded at once).
        self.runbooks_loading = asyncio.Event()

    def activities(self) -> list[Any]:
        calls = self

        @activity.defn(name="collect_context")
        async def collect_context(request: ContextRequest) -> ContextResult:
            calls.order.append("collect_context")
            # Made one after the other, the runbooks would only load once this returned.
            await asyncio.wait_for(calls.runbooks_loading.wait(), timeout=10)
            return standin_context(request, calls.change)

        @activity.defn(name="attribute_bundle")
        async def attribute_bundle(bundle: IncidentBundle) -> AttributionOutput:
            calls.order.append("attribute_bundle")
            return standin_ranking(bundle, calls.change)

        @activity.defn(name="collect_and_attribute")
        async def collect_and_attribute(request: ContextRequest) -> AttributedContext:
            calls.order.append("collect_and_attribute")
            await asyncio.wait_for(calls.runbooks_loading.wait(), timeout=10)
            context = standin_context(request, calls.change)
            return AttributedContext(
                context=context, attribution=standin_ranking(context.bundle, calls.change)
            )

        @activity.defn(name="remediate")
        async def remediate(request: RemediationRequest) -> RemediationResult:
            calls.order.append("remediate")
            return RemediationResult(
                outcome="Successful",
                applied=True,
                target=f"deployment/{request.namespace}/{request.name}",
                message="rolled back to revision 2",
            )

        def notify(channel: str) -> Any:
            @activity.defn(name=f"notify_{channel}")
            async def notify_channel(request: NotifyRequest) -> NotifyResult:
                calls.order.append(f"{channel}:{request.event}")
                hook = calls.before_page.get(request.event)
                if hook is not None:
                    await hook()
                return NotifyResult(channel=channel, outcome="Successful", message="stand-in")

            return notify_channel

        @activity.defn(name="load_runbooks_activity")
        async def load_runbooks(request: LoadRunbooksRequest) -> list[Runbook]:
            calls.runbooks_loading.set()
            return await load_runbooks_activity(request)

        return [
            collect_context,
            attribute_bundle,
            collect_and_attribute,
            remediate,
            load_runbooks,
            notify("pagerduty"),
            notify("slack"),
        ]


async def standins(
    server: TemporalDevServer, runbook: str, tmp_path: Path, service: str
) -> tuple[Path, Calls, Client, str]:
    """A runbook directory holding `runbook`; stand-in activities for a new Deployment named after
    `service` in NAMESPACE; a client; a task queue of the test's own."""
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / "runbook.yaml").write_text(runbook)
    calls = Calls(NAMESPACE, f"{service}-{uuid.uuid4().hex[:6]}")
    client = await Client.connect(server.address, data_converter=pydantic_data_converter)
    return runbooks, calls, client, f"{service}-{uuid.uuid4().hex[:8]}"


async def _run(server: TemporalDevServer, runbook: str, tmp_path: Path) -> tuple[Calls, WorkflowHistory]:
    runbooks, calls, client, queue = await standins(server, runbook, tmp_path, "chat")
    namespace, name = NAMESPACE, calls.change.service
    now = datetime.now(UTC)
    labels = {"alertname": "HotPath", "severity": "critical", "service": name, "namespace": namespace}
    opening = IncidentSignal(
        source="alertmanager",
        received_at=now,
        alerts=[Alert(fingerprint="fp-1", status="firing", labels=labels, starts_at=now)],
    )
    async with Worker(
        client,
        task_queue=queue,
        workflows=[IncidentWorkflow],
        activities=calls.activities(),
        workflow_runner=sandbox_runner([IncidentWorkflow]),  # as the worker runs them
    ):
        handle = await start_incident(client, queue, incident_params(namespace, name, runbooks), opening)
        await handle.result()
        history = await handle.fetch_history()
    return calls, history


def _scheduled(history: WorkflowHistory) -> list[str]:
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]


def _patches(history: WorkflowHistory) -> set[str]:
    found = set()
    for event in history.events:
        if event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_patch":
                found.add(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
    return found


async def _replays(history: WorkflowHistory) -> None:
    replayer = Replayer(workflows=[IncidentWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"a run of this code does not replay: {result.replay_failure}"


async def test_rollback_comes_before_the_opening_page_and_context_is_local(
    temporal_server: TemporalDevServer, tmp_path: Path
) -> None:
    calls, history = await _run(temporal_server, ROLLBACK, tmp_path)
    order = calls.order
    # One local activity collects and ranks; nothing else runs before the rollback.
    assert order[:2] == ["collect_and_attribute", "remediate"], order
    # The opening page, on every channel, before anything else is told about the rollback.
    opened = [order.index("pagerduty:opened"), order.index("slack:opened")]
    later = [i for i, call in enumerate(order) if ":" in call and not call.endswith(":opened")]
    assert later and max(opened) < min(later), order
    assert "collect_and_attribute" not in _scheduled(history), "the context was a task-queue activity"
    assert {
        CONTEXT_WITH_ATTRIBUTION_PATCH,
        OPENED_AFTER_ACTION_PATCH,
        RUNBOOKS_WITH_CONTEXT_PATCH,
    } <= _patches(history)
    await _replays(history)


async def test_without_a_cluster_change_the_opening_page_still_goes_first(
    temporal_server: TemporalDevServer, tmp_path: Path
) -> None:
    calls, history = await _run(temporal_server, PAGE_ONLY, tmp_path)
    order = calls.order
    assert "remediate" not in order
    told = [call for call in order if ":" in call]
    assert told[:2] and {call.split(":")[1] for call in told[:2]} == {"opened"}, order
    assert any(call.endswith(":needs_human") for call in told), order
    await _replays(history)
