"""Run the stand-in incident workflow with the real paging activities on a real Temporal server."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from activities.paging.channels.pagerduty import PagerDutyChannel
from activities.paging.channels.slack import SlackChannel
from config import Settings
from devstack.receivers.slack import SlackMessage, SlackReceiver
from tests.paging.incident_workflow import PagingTestIncident, Scenario, ScenarioResult


@asynccontextmanager
async def paging_worker(client: Client, settings: Settings) -> AsyncIterator[str]:
    task_queue = f"paging-test-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[PagingTestIncident],
        activities=[PagerDutyChannel(settings).notify, SlackChannel(settings).notify],
    ):
        yield task_queue


async def start_incident(
    client: Client, task_queue: str, scenario: Scenario
) -> WorkflowHandle[PagingTestIncident, ScenarioResult]:
    return await client.start_workflow(
        PagingTestIncident.run,
        scenario,
        id=scenario.report.incident_id,
        task_queue=task_queue,
    )


async def run_incident(client: Client, settings: Settings, scenario: Scenario) -> ScenarioResult:
    async with paging_worker(client, settings) as task_queue:
        handle = await start_incident(client, task_queue, scenario)
        return await asyncio.wait_for(handle.result(), timeout=60)


async def wait_for_approval_message(slack: SlackReceiver, timeout_s: float = 20.0) -> SlackMessage:
    for _ in range(int(timeout_s / 0.05)):
        for message in list(slack.messages.values()):
            if any(block.get("type") == "actions" for block in message.blocks):
                return copy.deepcopy(message)  # the receiver edits its own copy later
        await asyncio.sleep(0.05)
    raise AssertionError("no approval message reached Slack")


def button(message: SlackMessage, approve: bool) -> dict[str, Any]:
    [actions] = [block for block in message.blocks if block["type"] == "actions"]
    wanted = "backout_approve" if approve else "backout_reject"
    [element] = [e for e in actions["elements"] if e["action_id"] == wanted]
    return dict(element)


def button_payload(message: SlackMessage, user: str, approve: bool = True) -> str:
    element = button(message, approve)
    return json.dumps(
        {
            "type": "block_actions",
            "trigger_id": uuid.uuid4().hex,  # Slack gives every click its own trigger_id
            "user": {"id": user, "username": user.lower()},
            "channel": {"id": message.channel},
            "container": {"type": "message", "message_ts": message.ts, "channel_id": message.channel},
            "message": {"ts": message.ts, "thread_ts": message.thread_ts, "text": message.text},
            "actions": [{"action_id": element["action_id"], "value": element["value"], "type": "button"}],
        }
    )
