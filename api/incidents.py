"""GET /v1/incidents, GET /v1/incidents/{id} (a workflow query: it survives restarts), the culprit
label an operator confirms, and the approval of a pending remediation. Every route takes the
operator token; an approval is the operator credential's identity, never a name in the body."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.approvers import verdict_for
from api.auth import Caller, requires
from api.common import ApiError, json_body, services, temporal_call, validated
from attribution.feedback import FeedbackError, append_feedback, feedback_record
from incidents.bundle import IncidentBundle
from incidents.models import ApprovalDecision, IncidentView, ViewPage

router = APIRouter(dependencies=[Depends(requires("operator"))])


class ApprovalBody(BaseModel):
    """What an API approval says; who approves is the credential's identity."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=200)
    approve: bool
    reason: str | None = Field(default=None, max_length=1000)
    # The plan the approver saw (the pending request's plan_id): refused when the plan differs.
    plan_id: str | None = Field(default=None, max_length=64)


class CulpritLabel(BaseModel):
    change_id: str = Field(min_length=1, max_length=300)
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
async def get_incidents(
    request: Request,
    state: str | None = Query(default=None, max_length=40),
    limit: int = Query(default=200, ge=1, le=1000),
) -> dict[str, Any]:
    client = await services(request).gateway.client()
    items = await temporal_call(list_incidents(client, limit))
    if state:
        items = [item for item in items if item["state"] == state]
    return {"incidents": items}


@router.get("/v1/incidents/{incident_id}", response_model=IncidentView, response_model_exclude_none=False)
async def get_incident(
    incident_id: str,
    request: Request,
    alerts_offset: int = Query(default=0, ge=0),
    alerts_limit: int = Query(default=100, ge=0, le=1000),
    timeline_offset: int = Query(default=0, ge=0),
    timeline_limit: int = Query(default=300, ge=0, le=1000),
    deliveries_offset: int = Query(default=0, ge=0),
    deliveries_limit: int = Query(default=300, ge=0, le=1000),
) -> IncidentView:
    """One page of the incident (`*_total` say how many alerts, timeline entries and deliveries
    there are in all; page on with the offsets)."""
    page = ViewPage(
        alerts_offset=alerts_offset,
        alerts_limit=alerts_limit,
        timeline_offset=timeline_offset,
        timeline_limit=timeline_limit,
        deliveries_offset=deliveries_offset,
        deliveries_limit=deliveries_limit,
    )
    client = await services(request).gateway.client()
    handle = client.get_workflow_handle(incident_id)
    try:
        return await temporal_call(handle.query("view_page", page, result_type=IncidentView))
    except WorkflowQueryFailedError as exc:
        if "view_page" not in str(exc):
            raise ApiError(409, "query_failed", str(exc)) from exc
        # A worker from before paging: the whole view.
        return await temporal_call(handle.query("view", result_type=IncidentView))
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise ApiError(404, "not_found", f"no incident {incident_id}") from exc
        raise


@router.post("/v1/incidents/{incident_id}/culprit", status_code=201)
async def confirm_culprit(incident_id: str, request: Request) -> dict[str, Any]:
    """An operator confirms or rejects a change as the culprit: a label for the next training run."""
    label = validated(CulpritLabel, await json_body(request))
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
        record = feedback_record(incident_id, label.change_id, label.confirmed, bundle)
    except FeedbackError as exc:
        raise ApiError(400, "invalid_feedback", str(exc)) from exc
    if found.store.shared:  # every replica's labels in one place (database_url)
        await asyncio.to_thread(
            found.store.add_label, incident_id, record.change_id, record.recorded_at, record.model_dump_json()
        )
    else:
        await asyncio.to_thread(append_feedback, found.settings.feedback_file, record)
    return {"incident_id": incident_id, "change_id": record.change_id, "confirmed": record.confirmed}


@router.post("/v1/incidents/{incident_id}/approval")
async def approve(
    incident_id: str, request: Request, caller: Caller = Depends(requires("operator"))
) -> dict[str, Any]:
    """Approve or reject the pending remediation as the operator credential's identity."""
    body = await json_body(request)
    if isinstance(body, dict) and ({"user", "source", "aliases"} & set(body)):
        raise ApiError(
            422,
            "invalid_payload",
            "user/source: the approver is the credential's identity (operator_identity), not the body's",
        )
    asked = validated(ApprovalBody, body)
    found = services(request)
    client = await found.gateway.client()
    verdict = await verdict_for(found.settings, client, incident_id, caller.identity)
    if verdict.refusal is not None:
        raise ApiError(403, "not_an_approver", verdict.refusal)
    decision = ApprovalDecision(
        request_id=asked.request_id,
        approve=asked.approve,
        user=caller.identity,
        source="api",
        reason=asked.reason,
        aliases=sorted(verdict.names - {caller.identity}),
        plan_id=asked.plan_id,
    )
    handle = client.get_workflow_handle(incident_id)
    try:
        verdict_text = await temporal_call(handle.execute_update("approve", decision, result_type=str))
    except WorkflowUpdateFailedError as exc:
        raise ApiError(409, "approval_refused", str(exc.cause or exc)) from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, "not_found", f"no running incident {incident_id}") from exc
        raise
    return {"incident_id": incident_id, "decision": verdict_text, "by": caller.identity}
