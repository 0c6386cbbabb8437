"""POST /v1/changes (reporter token: a change reported by CI/CD, a prompt registry, a corpus
pipeline, a flag system) and GET /v1/changes (operator token). Idempotent on the change id: 201
new, 200 the same again, 409 same id with other content.

A reported change is a claim by whoever holds the reporter token, so it is held to what it may
claim: an id of its own (never the cluster ledger's `k8s:` form, which it would shadow), a
namespace inside the allow list (never "every namespace"), an author other than backout (whose
own remediations are never candidates), a rollback handle in its own namespace and never on a
Secret, and times near now. It carries the reporter's identity (`reported_by`).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from api.auth import Caller, requires
from api.common import ApiError, json_body, services, validated
from config import Settings
from incidents.bundle import BACKOUT_AUTHOR, RESERVED_CHANGE_ID_PREFIXES, Change

router = APIRouter()

# How far back a reported change may have started, and how far in the future (clock skew).
REPORTED_MAX_AGE = timedelta(days=30)
REPORTED_MAX_SKEW = timedelta(days=1)
REPORTED_HANDLE_TYPES = frozenset({"deployment", "configmap"})
_TEXT_LIMITS = {
    "id": 256,
    "service": 253,
    "namespace": 63,
    "from_version": 256,
    "to_version": 256,
    "author": 256,
    "description": 2000,
}


class ChangeAccepted(BaseModel):
    id: str
    status: str


def check_reported(change: Change, settings: Settings, now: datetime) -> Change:
    """The change as stored (its handle's namespace filled in), or a 422/403 naming what is wrong."""
    problems: list[str] = []
    for field, limit in _TEXT_LIMITS.items():
        value = getattr(change, field)
        if isinstance(value, str) and len(value) > limit:
            problems.append(f"{field}: longer than {limit} characters")
    if change.id.startswith(RESERVED_CHANGE_ID_PREFIXES):
        problems.append(
            f"id: {change.id!r} uses the prefix of backout's own change ledger "
            f"({', '.join(RESERVED_CHANGE_ID_PREFIXES)}); reported changes use ids of their own"
        )
    if (change.author or "").strip().lower() == BACKOUT_AUTHOR:
        problems.append("author: 'backout' is reserved for backout's own remediations")
    if not change.namespace:
        problems.append("namespace: required (a reported change belongs to one namespace)")
    if change.started_at < now - REPORTED_MAX_AGE or change.started_at > now + REPORTED_MAX_SKEW:
        problems.append("started_at: must be within the last 30 days (and not over a day ahead)")
    if change.completed_at is not None and not (
        change.started_at <= change.completed_at <= now + REPORTED_MAX_SKEW
    ):
        problems.append("completed_at: must be after started_at and not over a day ahead")
    handle = change.rollback
    if handle is not None:
        if handle.type not in REPORTED_HANDLE_TYPES:
            problems.append(
                f"rollback.type: a reported change may name a {' or '.join(sorted(REPORTED_HANDLE_TYPES))}, "
                f"not {handle.type!r}"
            )
        if handle.namespace is not None and handle.namespace != change.namespace:
            problems.append(
                f"rollback.namespace: {handle.namespace!r} is not the change's namespace {change.namespace!r}"
            )
    if problems:
        raise ApiError(422, "invalid_change", "; ".join(problems))
    if not settings.namespace_allowed(change.namespace):
        raise ApiError(
            403, "namespace_not_allowed", f"namespace {change.namespace} is outside the allow list"
        )
    if handle is not None and handle.namespace is None:
        change = change.model_copy(
            update={"rollback": handle.model_copy(update={"namespace": change.namespace})}
        )
    return change


@router.post("/v1/changes", status_code=201, response_model=ChangeAccepted)
async def report_change(
    request: Request, response: Response, caller: Caller = Depends(requires("reporter"))
) -> ChangeAccepted:
    found = services(request)
    now = datetime.now(UTC)
    claimed = validated(Change, await json_body(request))
    if claimed.reported_by is not None and claimed.reported_by != caller.identity:
        raise ApiError(422, "invalid_change", "reported_by: set by backout from the reporter credential")
    change = check_reported(claimed, found.settings, now).model_copy(update={"reported_by": caller.identity})
    outcome = await asyncio.to_thread(found.store.put, change, now)
    if outcome == "conflict":
        raise ApiError(409, "conflict", f"change {change.id} was already reported with different content")
    if outcome == "unchanged":
        response.status_code = 200
    return ChangeAccepted(id=change.id, status=outcome)


@router.get("/v1/changes")
async def list_changes(
    request: Request,
    since_s: int = Query(default=7200, ge=0, le=int(REPORTED_MAX_AGE.total_seconds())),
    namespace: str | None = Query(default=None, max_length=63),
    caller: Caller = Depends(requires("operator")),
) -> dict[str, Any]:
    since = datetime.now(UTC) - timedelta(seconds=since_s)
    changes = await asyncio.to_thread(services(request).store.list, since, None, namespace)
    return {"changes": [json.loads(c.model_dump_json()) for c in changes]}
