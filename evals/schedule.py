"""Create or update the Temporal Schedule that runs EvalWorkflow every N minutes (idempotent)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from evals.contracts import EvalWorkflowInput
from evals.models import EvalManifest

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ScheduleOutcome(BaseModel):
    schedule_id: str
    action: Literal["created", "updated"]
    every_s: int
    workflow_id: str
    task_queue: str


def parse_every(text: str) -> timedelta:
    """'15m', '1h', '90s', '2d' or plain seconds; at least 10 seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"--every {text!r}: expected a number with unit s, m, h or d (e.g. 15m)")
    seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < 10:
        raise ValueError(f"--every {text!r}: must be at least 10s")
    return timedelta(seconds=seconds)


def schedule_id_for(manifest: EvalManifest) -> str:
    return f"eval-{manifest.name}"


def build_schedule(
    manifest: EvalManifest, workflow_input: EvalWorkflowInput, every: timedelta, task_queue: str
) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "EvalWorkflow",
            workflow_input,
            id=schedule_id_for(manifest),
            task_queue=task_queue,
            execution_timeout=timedelta(hours=1),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # A run still going when the next is due is not doubled up: the next one waits.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.BUFFER_ONE),
    )


async def ensure_schedule(
    client: Client,
    manifest_path: Path,
    manifest: EvalManifest,
    every: timedelta,
    task_queue: str,
    state_dir: Path,
    endpoint: str | None = None,
    trigger_now: bool = False,
) -> ScheduleOutcome:
    workflow_input = EvalWorkflowInput(
        manifest_path=str(manifest_path.resolve()), state_dir=str(state_dir.resolve()), endpoint=endpoint
    )
    schedule = build_schedule(manifest, workflow_input, every, task_queue)
    schedule_id = schedule_id_for(manifest)
    action: Literal["created", "updated"] = "created"
    try:
        handle = await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(schedule_id)

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await handle.update(replace)
        action = "updated"
    if trigger_now:
        await handle.trigger()
    return ScheduleOutcome(
        schedule_id=schedule_id,
        action=action,
        every_s=int(every.total_seconds()),
        workflow_id=schedule_id,
        task_queue=task_queue,
    )
