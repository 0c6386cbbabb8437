"""The one small interface every paging channel implements.

A channel is one module in `activities/paging/channels/` (a class with a `name`, a `title` and
`send`), found there by module. The incident workflow loops over the channels named in its
input; each channel is its own activity, `notify_<name>`, so one channel failing never holds
another back, and a failure is noted through the channels that worked (`failure_note`).

Retry contract of `send`: a rate limit, 5xx or network failure raises a retryable
ApplicationError (Temporal's retry policy owns backoff); a rejected request (400, bad token,
unknown channel) raises a non-retryable one. A channel that is not configured answers
`Inconclusive` without raising, so a demo without PagerDuty or Slack still runs.
"""

from __future__ import annotations

import asyncio
import inspect
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.paging.owners import OwnerLookup
from config import Settings
from incidents.models import NotifyRequest, NotifyResult


class DeliveryError(Exception):
    """A notification that did not go through.

    `retryable` says whether trying again later may succeed (rate limit, 5xx, network); a
    rejected request (400, bad token) is not retryable.
    """

    def __init__(self, channel: str, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(f"{channel}: {message}")
        self.channel = channel
        self.message = message
        self.retryable = retryable
        self.status = status


def delivery_failure(error: DeliveryError) -> ApplicationError:
    """The ApplicationError Temporal should see for a failed delivery."""
    kind = "NotifyUnavailable" if error.retryable else "NotifyRejected"
    return ApplicationError(str(error), type=kind, non_retryable=not error.retryable)


def joined(message: str, note: str) -> str:
    return f"{message}; {note}" if note else message


class PagingChannel(ABC):
    """One way of telling people about an incident (a pager, a chat, a webhook)."""

    name: ClassVar[str]  # the activity is notify_<name>; results and the timeline use it
    title: ClassVar[str]  # how other channels name it, e.g. "PagerDuty"
    pages: ClassVar[bool] = False  # wakes someone up: a runbook on trial in shadow mode skips it
    position: ClassVar[int] = 100  # order in which the workflow calls the channels

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.owners = OwnerLookup(settings)

    @classmethod
    def enabled(cls, settings: Settings) -> bool:
        """Whether new incidents call this channel (one that is always called says when it is unset)."""
        return True

    @abstractmethod
    def send(self, request: NotifyRequest) -> NotifyResult:
        """Deliver one event (blocking; runs in the activity thread pool)."""

    @classmethod
    def failure_note(cls, request: NotifyRequest, failed: str, error: str) -> NotifyRequest | None:
        """Workflow-side and pure: what this channel sends to say that channel `failed` (its title)
        did not get `request.event`; None when it does not carry such notes."""
        return None

    async def notify(self, request: NotifyRequest) -> NotifyResult:
        """The activity `notify_<name>`; each concrete channel gets its own (see __init_subclass__)."""
        return await asyncio.to_thread(self.send, request)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if inspect.isabstract(cls) or "name" not in cls.__dict__:
            return

        async def notify(self, request: NotifyRequest) -> NotifyResult:
            return await asyncio.to_thread(self.send, request)

        notify.__qualname__ = f"{cls.__qualname__}.notify"
        notify.__doc__ = f"Deliver one incident event through {cls.title}."
        cls.notify = activity.defn(name=f"notify_{cls.name}")(notify)  # type: ignore[method-assign]
