"""Capabilities a paging back end provides, and the ownership types.

Sandbox-safe: stdlib, pydantic and incidents.models only, so the incident workflow
may import `OwnerRequest` and `Owner` from here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

from pydantic import BaseModel, Field

from incidents.actions import Severity
from incidents.models import ChatThread, IncidentReport

TEAM_ANNOTATION = "backout.dev/team"


class OwnerRequest(BaseModel):
    service: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class Owner(BaseModel):
    """Who answers for a service. Empty fields mean "fall back to the global settings"."""

    team: str | None = None
    pagerduty_routing_key: str | None = None
    slack_channel: str | None = None
    approvers: list[str] = Field(default_factory=list)
    source: Literal["ownership_file", "annotation", "label", "default", "none"] = "none"


class RewriteRequest(BaseModel):
    """Input of the optional `rewrite_summary` activity."""

    report: IncidentReport


class RewrittenSummary(BaseModel):
    """The deterministic summary always; the LLM's version only when it passed the fact check."""

    deterministic: str
    rewritten: str | None = None
    model: str | None = None
    note: str = ""


class DeliveryError(Exception):
    """A notification that did not go through.

    `retryable` says whether trying again later may succeed (rate limit, 5xx,
    network); a rejected request (400, bad token) is not retryable.
    """

    def __init__(self, channel: str, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(f"{channel}: {message}")
        self.channel = channel
        self.message = message
        self.retryable = retryable
        self.status = status


class PagerAlert(BaseModel):
    """One Events API v2 style alert, independent of the vendor client."""

    dedup_key: str = Field(min_length=1, max_length=255)
    summary: str = Field(min_length=1, max_length=1024)
    source: str = Field(min_length=1)
    severity: Severity = "critical"
    timestamp: str | None = None
    component: str | None = None
    group: str | None = None
    alert_class: str | None = None
    custom_details: dict[str, Any] = Field(default_factory=dict)
    links: list[dict[str, str]] = Field(default_factory=list)


class PagerChange(BaseModel):
    """A change event: recorded on the service's timeline, never pages anyone."""

    summary: str = Field(min_length=1, max_length=1024)
    source: str = Field(min_length=1)
    timestamp: str
    custom_details: dict[str, Any] = Field(default_factory=dict)
    links: list[dict[str, str]] = Field(default_factory=list)


class Pager(ABC):
    """Pages humans: trigger, acknowledge and resolve an alert by dedup key; record changes."""

    name: str = "pager"

    @abstractmethod
    def trigger(self, alert: PagerAlert) -> str:
        """Open (or update) the alert; returns the dedup key the service answered with."""

    @abstractmethod
    def acknowledge(self, dedup_key: str) -> None: ...

    @abstractmethod
    def resolve(self, dedup_key: str) -> None: ...

    @abstractmethod
    def change_event(self, change: PagerChange) -> None: ...


class ChatNotifier(ABC):
    """Posts to a chat channel, replies in a thread and edits a message in place."""

    name: str = "chat"

    @abstractmethod
    def post(
        self, channel: str, text: str, blocks: list[dict[str, Any]], thread_ts: str | None = None
    ) -> ChatThread:
        """Post a message (a reply when thread_ts is set); returns where it landed."""

    @abstractmethod
    def update(self, message: ChatThread, text: str, blocks: list[dict[str, Any]]) -> None: ...

    @abstractmethod
    def post_ephemeral(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> None: ...
