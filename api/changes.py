"""POST /v1/changes (a change reported by CI/CD, a prompt registry, a corpus pipeline, a flag system)
and GET /v1/changes. Idempotent on the change id: 201 new, 200 the same again, 409 same id with
other content."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from api.common import ApiError, authorized_json, services, validated
from incidents.bundle import Change

router = APIRouter()


class ChangeAccepted(BaseModel):
    id: str
    status: str


@router.post("/v1/changes", status_code=201, response_model=ChangeAccepted)
async def report_change(request: Request, response: Response) -> ChangeAccepted:
    change = validated(Change, await authorized_json(request))
    outcome = await asyncio.to_thread(services(request).store.put, change, datetime.now(UTC))
    if outcome == "conflict":
        raise ApiError(409, "conflict", f"change {change.id} was already reported with different content")
    if outcome == "unchanged":
        response.status_code = 200
    return ChangeAccepted(id=change.id, status=outcome)


@router.get("/v1/changes")
async def list_changes(request: Request, since_s: int = 7200, namespace: str | None = None) -> dict[str, Any]:
    since = datetime.now(UTC) - timedelta(seconds=since_s)
    changes = await asyncio.to_thread(services(request).store.list, since, None, namespace)
    return {"changes": [json.loads(c.model_dump_json()) for c in changes]}
