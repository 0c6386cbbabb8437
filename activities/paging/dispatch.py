"""Workflow-side helper: send one event to PagerDuty and Slack, each independent of the other.

Runs inside a workflow (deterministic: temporalio.workflow, pydantic and incidents.models
only). When one channel fails after its retries, the failure is noted on the other one:
a Slack thread reply saying the page did not go out, or the PagerDuty alert updated (same
dedup key) saying Slack did not get the message.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from incidents.models import ChatThread, NotifyRequest, NotifyResult

NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    # About 3.5 minutes of retries inside the 5-minute budget: a pager down for a minute still pages.
    maximum_attempts=12,
    non_retryable_error_types=["NotifyRejected", "OwnershipError"],
)
# Events whose PagerDuty action is a trigger: re-sending with the same dedup key updates the alert.
_PAGE_EVENTS = frozenset({"opened", "needs_human"})


class PagingOutcome(BaseModel):
    pagerduty: NotifyResult | None = None
    slack: NotifyResult | None = None
    thread: ChatThread | None = None
    errors: list[str] = Field(default_factory=list)


def _root_cause(error: BaseException) -> str:
    cause: BaseException = error
    while cause.__cause__ is not None:
        cause = cause.__cause__
    return str(cause) or type(cause).__name__


async def _deliver(
    activity: str, request: NotifyRequest, retry: RetryPolicy, timeout: timedelta
) -> NotifyResult | str:
    try:
        return await workflow.execute_activity(
            activity,
            request,
            result_type=NotifyResult,
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=timeout,
            retry_policy=retry,
        )
    except ActivityError as error:
        return _root_cause(error)


async def notify_all(
    request: NotifyRequest,
    retry: RetryPolicy = NOTIFY_RETRY,
    timeout: timedelta = timedelta(minutes=5),
) -> PagingOutcome:
    """Deliver to both channels concurrently; a failure on one is reported through the other."""
    pd, slack = await asyncio.gather(
        _deliver("notify_pagerduty", request, retry, timeout),
        _deliver("notify_slack", request, retry, timeout),
    )
    outcome = PagingOutcome(thread=request.thread)
    if isinstance(slack, NotifyResult):
        outcome.slack = slack
        outcome.thread = slack.thread or request.thread
    else:
        outcome.errors.append(f"slack {request.event}: {slack}")
    if isinstance(pd, NotifyResult):
        outcome.pagerduty = pd
    else:
        outcome.errors.append(f"pagerduty {request.event}: {pd}")

    if isinstance(pd, str) and isinstance(slack, NotifyResult) and outcome.thread is not None:
        note = NotifyRequest(
            event="update",
            report=request.report,
            thread=outcome.thread,
            detail=f":warning: PagerDuty {request.event} was NOT delivered: {pd}",
        )
        noted = await _deliver("notify_slack", note, retry, timeout)
        if isinstance(noted, str):
            outcome.errors.append(f"slack note of the PagerDuty failure: {noted}")
    elif isinstance(slack, str) and isinstance(pd, NotifyResult) and request.event in _PAGE_EVENTS:
        prefix = f"{request.detail}; " if request.detail else ""
        note = request.model_copy(update={"detail": f"{prefix}Slack notification failed: {slack}"})
        noted = await _deliver("notify_pagerduty", note, retry, timeout)
        if isinstance(noted, str):
            outcome.errors.append(f"pagerduty note of the Slack failure: {noted}")
    return outcome
