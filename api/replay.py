"""Slack replay protection every API replica shares and a restart does not forget.

A signed Slack request may be replayed for as long as its timestamp is fresh (300 s). Each
accepted request is recorded in Temporal, the one store every replica already talks to: a
workflow id derived from the request's signature is started once with the reuse policy
REJECT_DUPLICATE, on a task queue no worker polls, and times out by itself a second later. A
second start with the same id fails for as long as the namespace retains closed workflows (days;
the signature is useless after 300 s anyway), on every replica and after any restart.

A small in-memory set in front answers repeats seen by this replica without a round trip.
"""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import timedelta

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

MAX_AGE_S = 300
RECORD_WORKFLOW = "SlackRequestSeen"  # never registered by a worker: the start itself is the record
RECORD_TTL = timedelta(seconds=1)


def record_id(signature: str) -> str:
    return "slack-request-" + hashlib.sha256(signature.encode()).hexdigest()[:40]


class LocalReplayGuard:
    """Signatures this process accepted, kept for twice the allowed age."""

    def __init__(self, keep_s: float = 2 * MAX_AGE_S) -> None:
        self._keep_s = keep_s
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_time(self, signature: str) -> bool:
        now = time.monotonic()
        with self._lock:
            for key in [key for key, at in self._seen.items() if now - at > self._keep_s]:
                del self._seen[key]
            if signature in self._seen:
                return False
            self._seen[signature] = now
            return True


async def first_time_anywhere(client: Client, task_queue: str, signature: str) -> bool:
    """Record the signature in Temporal; False when any replica recorded it before."""
    try:
        await client.start_workflow(
            RECORD_WORKFLOW,
            id=record_id(signature),
            task_queue=f"{task_queue}-slack-replay",
            run_timeout=RECORD_TTL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
    except WorkflowAlreadyStartedError:
        return False
    return True


async def was_recorded(client: Client, signature: str) -> bool:
    """Whether the signature is recorded (for tests and diagnostics)."""
    try:
        description = await client.get_workflow_handle(record_id(signature)).describe()
    except Exception:
        return False
    return description.status in (
        WorkflowExecutionStatus.RUNNING,
        WorkflowExecutionStatus.TIMED_OUT,
        WorkflowExecutionStatus.TERMINATED,
    )
