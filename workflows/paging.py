"""Workflow-side paging: send one incident event through every channel, each independent of the others.

Runs inside the workflow (deterministic). Every channel is its own activity, scheduled together,
so a slow or failing pager never holds chat back. When a channel fails after its retries, the
failure is noted through each channel that worked and carries such notes (its `failure_note`):
a Slack thread reply saying the page did not go out, or the PagerDuty alert updated (same dedup
key) saying Slack did not get the message.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.paging.channel import PagingChannel
    from activities.paging.channels import CHANNELS
    from incidents.models import ChatThread, IncidentReport, NotifyEvent, NotifyRequest, NotifyResult

NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    # About 3.5 minutes of retries inside the 5-minute budget: a pager down for a minute still pages.
    maximum_attempts=12,
    non_retryable_error_types=["NotifyRejected", "OwnershipError"],
)
NOTIFY_TIMEOUT = timedelta(minutes=5)


class PagingOutcome(BaseModel):
    """What each channel answered (by name), the chat threads now known, and what did not go out."""

    results: dict[str, NotifyResult] = Field(default_factory=dict)
    threads: dict[str, ChatThread] = Field(default_factory=dict)
    errors: list[str] = Field(default_factory=list)


def channels_named(names: list[str]) -> list[type[PagingChannel]]:
    """The channel classes for an incident's channel names, in its order (unknown names are skipped)."""
    return [CHANNELS[name] for name in names if name in CHANNELS]


def cause_of(error: BaseException) -> str:
    """The innermost cause of an activity error: the message a human needs."""
    cause: BaseException = error
    while cause.__cause__ is not None:
        cause = cause.__cause__
    return str(cause) or type(cause).__name__


async def _deliver(
    channel: type[PagingChannel], request: NotifyRequest, retry: RetryPolicy, timeout: timedelta
) -> NotifyResult | str:
    try:
        return await workflow.execute_activity_method(
            channel.notify,
            request,
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=timeout,
            retry_policy=retry,
        )
    except ActivityError as error:
        return cause_of(error)


async def notify_channels(
    channels: list[type[PagingChannel]],
    event: NotifyEvent,
    report: IncidentReport,
    threads: dict[str, ChatThread],
    detail: str | None = None,
    chat_channel: str | None = None,
    retry: RetryPolicy = NOTIFY_RETRY,
    timeout: timedelta = NOTIFY_TIMEOUT,
) -> PagingOutcome:
    """Deliver `event` to every channel concurrently; a failure on one is noted through the others."""
    requests = [
        NotifyRequest(
            event=event,
            report=report,
            thread=threads.get(channel.name),
            detail=detail,
            chat_channel=chat_channel,
        )
        for channel in channels
    ]
    answers = await asyncio.gather(
        *(
            _deliver(channel, request, retry, timeout)
            for channel, request in zip(channels, requests, strict=True)
        )
    )
    outcome = PagingOutcome(threads=dict(threads))
    for channel, answer in zip(channels, answers, strict=True):
        if isinstance(answer, NotifyResult):
            outcome.results[channel.name] = answer
            if answer.thread is not None:
                outcome.threads.setdefault(channel.name, answer.thread)
        else:
            outcome.errors.append(f"{channel.name} {event}: {answer}")
    for failed, failure in zip(channels, answers, strict=True):
        if not isinstance(failure, str):
            continue
        for channel, request, answer in zip(channels, requests, answers, strict=True):
            if not isinstance(answer, NotifyResult):
                continue
            own = request.model_copy(update={"thread": answer.thread or request.thread})
            note = channel.failure_note(own, failed.title, failure)
            if note is None:
                continue
            noted = await _deliver(channel, note, retry, timeout)
            if isinstance(noted, str):
                outcome.errors.append(f"{channel.name} note of the {failed.title} failure: {noted}")
    return outcome
