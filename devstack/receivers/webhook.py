"""A local receiver for backout's generic JSON webhook channel, checking what the channel promises.

POST /hooks/backout: the body must be JSON of the documented shape (version 1, the event, the
incident's id, state, title, summary, culprits, actions...); with a secret, X-Backout-Timestamp
must be fresh (5 minutes) and X-Backout-Signature must be "sha256=" + HMAC-SHA256 of
"<timestamp>.<raw body>". A bad request gets 400, a bad signature 401; every accepted event is
recorded, and a delivery id seen before counts as a retry, not a new event.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from devstack.receivers.server import LocalApi
from incidents.bundle import describe_validation_error
from incidents.models import NotifyEvent

MAX_AGE_S = 300


class _Culprit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    change_id: str = Field(min_length=1)
    probability: float = Field(ge=0.0, le=1.0)
    change: str
    reasons: list[str]


class ReceivedEvent(BaseModel):
    """The documented webhook body; unknown keys are refused so the contract cannot drift silently."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[1]
    event: NotifyEvent
    incident_id: str = Field(min_length=1)
    state: str = Field(min_length=1)
    title: str = Field(min_length=1)
    severity: Literal["critical", "error", "warning", "info"]
    service: str | None
    namespace: str | None
    source: str = Field(min_length=1)
    team: str | None
    detected_at: datetime
    summary: str
    symptom: str
    culprits: list[_Culprit]
    actions: list[str]
    approval: dict[str, Any] | None
    links: dict[str, str]
    detail: str | None


class WebhookReceiver(LocalApi):
    def __init__(self, secret: str | None = None) -> None:
        super().__init__()
        self.secret = secret
        self.events: list[ReceivedEvent] = []
        self.headers: list[dict[str, str]] = []
        self.retries = 0
        self.rejected: list[tuple[int, str]] = []
        self._deliveries: set[str] = set()
        self.app.post("/hooks/backout")(self._receive)

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hooks/backout"

    def _forget_records(self) -> None:
        self.events.clear()
        self.headers.clear()
        self.rejected.clear()
        self._deliveries.clear()
        self.retries = 0

    def _reject(self, status: int, reason: str) -> JSONResponse:
        with self._lock:
            self.rejected.append((status, reason))
        return JSONResponse({"error": reason}, status)

    async def _receive(self, request: Request) -> JSONResponse:
        fault = self._attempt()
        if fault is not None:
            return JSONResponse({"error": f"injected {fault[0]}"}, fault[0], headers=fault[1])
        raw = await request.body()
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return self._reject(400, "content type must be application/json")
        if self.secret is not None:
            problem = self._signature_problem(request, raw)
            if problem:
                return self._reject(401, problem)
        try:
            event = ReceivedEvent.model_validate(json.loads(raw))
        except json.JSONDecodeError as exc:
            return self._reject(400, f"body is not JSON: {exc.msg}")
        except ValidationError as exc:
            return self._reject(400, describe_validation_error(exc))
        delivery = request.headers.get("x-backout-delivery", "")
        if len(delivery) < 16:
            return self._reject(400, "X-Backout-Delivery is missing")
        with self._lock:
            if delivery in self._deliveries:
                self.retries += 1
            else:
                self._deliveries.add(delivery)
                self.events.append(event)
                self.headers.append(dict(request.headers))
        return JSONResponse({"ok": True}, 202)

    def _signature_problem(self, request: Request, raw: bytes) -> str | None:
        assert self.secret is not None
        stamp = request.headers.get("x-backout-timestamp", "")
        given = request.headers.get("x-backout-signature", "")
        if not stamp.isdigit() or not given:
            return "missing X-Backout-Timestamp or X-Backout-Signature"
        if abs(time.time() - int(stamp)) > MAX_AGE_S:
            return "stale X-Backout-Timestamp"
        expected = (
            "sha256="
            + hmac.new(self.secret.encode(), stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
        )
        if not hmac.compare_digest(given, expected):
            return "invalid X-Backout-Signature"
        return None
