"""A generic JSON webhook: every incident event POSTed to one URL, for the systems backout has no
module for (an incident tracker, a chat bridge, an on-call tool's generic intake).

The body is a versioned JSON document (`WebhookEvent`). With `webhook_secret` set, each request
carries X-Backout-Timestamp and X-Backout-Signature = "sha256=" + hex HMAC-SHA256 of
"<timestamp>.<body>" under the secret, so the receiver can check origin and freshness;
X-Backout-Delivery is the same for every retry of one event (dedupe on it). It reports, it does
not page: a runbook on trial in shadow mode sends here too.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel, Field

from activities.paging.channel import DeliveryError, PagingChannel, delivery_failure
from config import Settings
from incidents.models import ApprovalRequest, Culprit, NotifyEvent, NotifyRequest, NotifyResult

_TIMEOUT_S = 10.0
_RETRYABLE = frozenset({408, 425, 429})


class WebhookEvent(BaseModel):
    """What the webhook receives for one incident event (version 1)."""

    version: Literal[1] = 1
    event: NotifyEvent
    incident_id: str
    state: str
    title: str
    severity: str
    service: str | None = None
    namespace: str | None = None
    source: str
    team: str | None = None
    detected_at: datetime
    summary: str
    symptom: str
    culprits: list[Culprit] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list)
    approval: ApprovalRequest | None = None
    links: dict[str, str] = Field(default_factory=dict)
    detail: str | None = None


def event_of(request: NotifyRequest) -> WebhookEvent:
    report = request.report
    return WebhookEvent(
        event=request.event,
        incident_id=report.incident_id,
        state=report.state,
        title=report.title,
        severity=report.severity,
        service=report.service,
        namespace=report.namespace,
        source=report.source,
        team=report.team,
        detected_at=report.detected_at,
        summary=report.summary,
        symptom=report.symptom,
        culprits=report.culprits,
        actions=report.done,
        approval=report.approval,
        links=report.links,
        detail=request.detail,
    )


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookChannel(PagingChannel):
    name: ClassVar[str] = "webhook"
    title: ClassVar[str] = "Webhook"
    position: ClassVar[int] = 30

    @classmethod
    def enabled(cls, settings: Settings) -> bool:
        return bool(settings.webhook_url)

    def send(self, request: NotifyRequest) -> NotifyResult:
        url = self.settings.webhook_url
        if not url:
            return NotifyResult(
                channel=self.name, outcome="Inconclusive", message="no webhook_url: nothing sent", sent=False
            )
        body = event_of(request).model_dump_json().encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "backout",
            "X-Backout-Event": request.event,
            "X-Backout-Delivery": hashlib.sha256(body).hexdigest()[:32],
        }
        secret = self.settings.webhook_secret
        if secret is not None and secret.get_secret_value():
            timestamp = str(int(time.time()))
            headers["X-Backout-Timestamp"] = timestamp
            headers["X-Backout-Signature"] = signature(secret.get_secret_value(), timestamp, body)
        try:
            try:
                response = httpx.post(url, content=body, headers=headers, timeout=_TIMEOUT_S)
            except httpx.HTTPError as exc:
                raise DeliveryError(self.name, f"POST {url} failed: {exc}", retryable=True) from exc
            if response.status_code >= 300:
                status = response.status_code
                retryable = status >= 500 or status in _RETRYABLE
                raise DeliveryError(
                    self.name,
                    f"POST {url}: HTTP {status}: {response.text[:300]}",
                    retryable=retryable,
                    status=status,
                )
        except DeliveryError as exc:
            raise delivery_failure(exc) from exc
        return NotifyResult(
            channel=self.name,
            outcome="Successful",
            message=f"{request.event} posted (HTTP {response.status_code})",
        )
