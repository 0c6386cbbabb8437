"""GET /v1/incidents, GET /v1/incidents/{id} (a workflow query: it survives restarts), the culprit
label an operator confirms, and the approval of a pending remediation."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.common import ApiError, authorized_json, services, temporal_call, validated
from attribution.feedback import FeedbackError, record_feedback
from incidents.bundle import IncidentBundle
from incidents.models import ApprovalDecision, IncidentView

router = APIRouter()


class CulpritLabel(BaseModel):
    change_id: str = Field(min_length=1)
    confirmed: bool = True


async def list_incidents(client: Client, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    async for execution in client.list_workflows('WorkflowType = "IncidentWorkflow"', limit=limit):
        memo = await execution.memo()
        items.append(
            {
                "id": execution.id,
                "state": memo.get("state", "open"),
                "status": execution.status.name if execution.status else None,
                "service": memo.get("service"),
                "namespace": memo.get("namespace"),
                "source": memo.get("source"),
                "opened_at": execution.start_time.isoformat(),
                "closed_at": execution.close_time.isoformat() if execution.close_time else None,
            }
        )
    return items


@router.get("/v1/incidents")
async def get_incidents(request: Request, state: str | None = None, limit: int = 200) -> dict[str, Any]:
    client = await services(request).gateway.client()
    items = await temporal_call(list_incidents(client, limit))
    if state:
        items = [item for item in items if item["state"] == state]
    return {"incidents": items}


@router.get("/v1/incidents/{incident_id}", response_model=IncidentView)
async def get_incident(incident_id: str, request: Request) -> IncidentView:
    client = await services(request).gateway.client()
    handle = client.get_workflow_handle(incident_id)
    try:
        return await temporal_call(handle.query("view", result_type=IncidentView))
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise ApiError(404, "not_found", f"no incident {incident_id}") from exc
        raise


@router.post("/v1/incidents/{incident_id}/culprit", status_code=201)
async def confirm_culprit(incident_id: str, request: Request) -> dict[str, Any]:
    """An operator confirms or rejects a change as the culprit: a label for the next training run."""
    label = validated(CulpritLabel, await authorized_json(request))
    found = services(request)
    client = await found.gateway.client()
    try:
        bundle = await temporal_call(
            client.get_workflow_handle(incident_id).query("bundle", result_type=IncidentBundle)
        )
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise ApiError(404, "not_found", f"no incident {incident_id}") from exc
        raise
    if bundle is None:
        raise ApiError(409, "no_bundle", f"incident {incident_id} has not collected its changes yet")
    try:
        record = await asyncio.to_thread(
            record_feedback,
            found.settings.feedback_file,
            incident_id,
            label.change_id,
            label.confirmed,
            bundle,
        )
    except FeedbackError as exc:
        raise ApiError(400, "invalid_feedback", str(exc)) from exc
    return {"incident_id": incident_id, "change_id": record.change_id, "confirmed": record.confirmed}


@router.post("/v1/incidents/{incident_id}/approval")
async def approve(incident_id: str, request: Request) -> dict[str, Any]:
    body = await authorized_json(request)
    decision = validated(ApprovalDecision, {"source": "api", **body} if isinstance(body, dict) else body)
    client = await services(request).gateway.client()
    handle = client.get_workflow_handle(incident_id)
    try:
        verdict = await temporal_call(handle.execute_update("approve", decision, result_type=str))
    except WorkflowUpdateFailedError as exc:
        raise ApiError(409, "approval_refused", str(exc.cause or exc)) from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, "not_found", f"no running incident {incident_id}") from exc
        raise
    return {"incident_id": incident_id, "decision": verdict}
