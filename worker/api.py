"""The HTTP API: Alertmanager webhook, change reports, incidents, health and metrics."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from attribution.feedback import FeedbackError, record_feedback
from incidents.bundle import Change, IncidentBundle, describe_validation_error
from incidents.changes_store import ChangeStore
from incidents.models import ApprovalDecision, IncidentView, OpenIncidentRequest
from incidents.service import IncidentBehaviour, open_or_join, signal_if_open, workflow_pollers
from worker.alertmanager import AlertmanagerPayload
from worker.deliveries import Deliveries
from worker.settings import Settings
from worker.slack_api import router as slack_router

HTTP_REQUESTS = Counter("backout_http_requests_total", "HTTP requests", ["route", "method", "status"])
HTTP_LATENCY = Histogram("backout_http_request_duration_seconds", "HTTP request latency", ["route"])
INCIDENTS_BY_STATE = Gauge("backout_incidents", "Incidents known to Temporal visibility, by state", ["state"])
ALERTS_RECEIVED = Counter("backout_alerts_received_total", "Alerts received from Alertmanager", ["status"])
DUPLICATES_ABSORBED = Counter(
    "backout_duplicate_notifications_total", "Notifications identical to one delivered moments before"
)

ClientFactory = Callable[[], Awaitable[Client]]
ModelT = TypeVar("ModelT", bound=BaseModel)


class ApiError(HTTPException):
    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.error = error


class Unavailable(ApiError):
    def __init__(self, detail: str) -> None:
        # Alertmanager retries 5xx only: an overloaded or unreachable Temporal is a 503, never a 429.
        super().__init__(503, "unavailable", detail, headers={"Retry-After": "5"})


class CulpritLabel(BaseModel):
    change_id: str = Field(min_length=1)
    confirmed: bool = True


class ChangeAccepted(BaseModel):
    id: str
    status: str


class TemporalGateway:
    """Connects lazily and reconnects, so the API starts (and answers 503) while Temporal is down."""

    def __init__(self, factory: ClientFactory) -> None:
        self._factory = factory
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(self._factory(), timeout=5)
                except Exception as exc:
                    raise Unavailable(f"temporal is unreachable: {exc}") from exc
        return self._client

    def peek(self) -> Client | None:
        return self._client


async def read_json(request: Request, limit: int) -> Any:
    """Raw body with a size cap, the content type checked, then JSON-decoded."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(
            415, "unsupported_media_type", f"content type must be application/json, got {content_type!r}"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        raise ApiError(400, "empty_body", "request body is empty")
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise ApiError(400, "malformed_json", f"body is not UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"line {exc.lineno} column {exc.colno}: {exc.msg}") from exc


def _validated(model: type[ModelT], body: Any) -> ModelT:
    """The body as `model`, or a 422 naming every field that is wrong."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ApiError(422, "invalid_payload", describe_validation_error(exc)) from exc


def create_app(
    settings: Settings, client_factory: ClientFactory, temporal_ui_url: str | None = None
) -> FastAPI:
    app = FastAPI(title="backout", version="0.1.0")
    gateway = TemporalGateway(client_factory)
    deliveries = Deliveries(ttl_s=settings.duplicate_window_s)
    behaviour = IncidentBehaviour(settings, temporal_ui_url=temporal_ui_url)
    store = ChangeStore(settings.change_store_file)
    app.state.settings = settings
    app.state.gateway = gateway
    app.state.change_store = store
    token = settings.api_token.get_secret_value() if settings.api_token else None
    app.include_router(slack_router)

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        route = request.url.path
        response = await call_next(request)
        matched = request.scope.get("route")
        route = getattr(matched, "path", "unmatched")
        HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = getattr(exc, "error", None) or {404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "error"
        )
        return JSONResponse(
            {"error": error, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "invalid_request", "detail": "; ".join(problems)}, status_code=422)

    def require_token(request: Request) -> None:
        if token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise ApiError(
                401, "unauthorized", "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    async def temporal_call(call: Awaitable[Any]) -> Any:
        try:
            return await call
        except RPCError as exc:
            if exc.status in (
                RPCStatusCode.UNAVAILABLE,
                RPCStatusCode.RESOURCE_EXHAUSTED,
                RPCStatusCode.DEADLINE_EXCEEDED,
            ):
                raise Unavailable(f"temporal: {exc.message}") from exc
            raise

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """The API is up; `temporal` says whether it reaches Temporal, `worker` whether a worker
        polls the task queue (without one, accepted alerts open incidents that nobody works)."""
        try:
            client = await gateway.client()
            await asyncio.wait_for(client.service_client.check_health(), timeout=2)
        except Exception as exc:
            return {"status": "ok", "temporal": f"unreachable: {exc}", "worker": "unknown"}
        try:
            pollers = await asyncio.wait_for(workflow_pollers(client, settings.task_queue), timeout=2)
            worker = "ok" if pollers else f"no worker polls task queue {settings.task_queue}"
        except Exception as exc:
            worker = f"unknown: {exc}"
        return {"status": "ok", "temporal": "ok", "worker": worker}

    @app.get("/metrics")
    async def metrics() -> Response:
        await _refresh_incident_gauge(gateway)
        body = generate_latest()
        if settings.worker_metrics_url:
            body += await _worker_step_metrics(settings.worker_metrics_url)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/alerts/alertmanager", status_code=202)
    async def alertmanager_webhook(request: Request) -> dict[str, Any]:
        require_token(request)
        body = await read_json(request, settings.max_body_bytes)
        if isinstance(body, dict) and "version" in body and body["version"] != "4":
            raise ApiError(
                422, "unsupported_version", f'payload version must be "4", got {body["version"]!r}'
            )
        payload = _validated(AlertmanagerPayload, body)
        key = payload.incident_key()
        for alert in payload.alerts:
            ALERTS_RECEIVED.labels(alert.status).inc()
        incident_id = key.workflow_id()
        delivery = (incident_id, payload.groupKey, payload.content_digest())
        if deliveries.seen(delivery):
            # An HA twin or a retry of a notification already delivered: the signal would change nothing.
            DUPLICATES_ABSORBED.inc()
            return {"incident_id": incident_id, "status": "duplicate", "alerts": len(payload.alerts)}
        signal = payload.to_signal(datetime.now(UTC))

        async def deliver() -> dict[str, Any]:
            client = await gateway.client()
            if not payload.any_firing:
                delivered = await temporal_call(signal_if_open(client, key, signal))
                if delivered:
                    deliveries.remember(delivery)
                return {
                    "incident_id": incident_id if delivered else None,
                    "status": "resolved" if delivered else "no open incident",
                }
            request_ = OpenIncidentRequest(
                namespace=key.namespace, service=key.service, group=key.group, signal=signal
            )
            handle = await temporal_call(open_or_join(client, behaviour, request_))
            deliveries.remember(delivery)
            return {"incident_id": handle.id, "status": "accepted", "alerts": len(payload.alerts)}

        outcome, twin = await deliveries.deliver_once(delivery, deliver)
        if twin and outcome["incident_id"] is not None:
            DUPLICATES_ABSORBED.inc()
            return {**outcome, "status": "duplicate"}
        return dict(outcome)

    @app.post("/v1/changes", status_code=201, response_model=ChangeAccepted)
    async def report_change(request: Request, response: Response) -> ChangeAccepted:
        require_token(request)
        body = await read_json(request, settings.max_body_bytes)
        change = _validated(Change, body)
        outcome = await asyncio.to_thread(store.put, change, datetime.now(UTC))
        if outcome == "conflict":
            raise ApiError(409, "conflict", f"change {change.id} was already reported with different content")
        if outcome == "unchanged":
            response.status_code = 200
        return ChangeAccepted(id=change.id, status=outcome)

    @app.get("/v1/changes")
    async def list_changes(since_s: int = 7200, namespace: str | None = None) -> dict[str, Any]:
        since = datetime.now(UTC) - timedelta(seconds=since_s)
        changes = await asyncio.to_thread(store.list, since, None, namespace)
        return {"changes": [json.loads(c.model_dump_json()) for c in changes]}

    @app.get("/v1/incidents")
    async def list_incidents(state: str | None = None, limit: int = 200) -> dict[str, Any]:
        client = await gateway.client()
        items = await temporal_call(_list_incidents(client, limit))
        if state:
            items = [item for item in items if item["state"] == state]
        return {"incidents": items}

    @app.get("/v1/incidents/{incident_id}", response_model=IncidentView)
    async def get_incident(incident_id: str) -> IncidentView:
        client = await gateway.client()
        handle = client.get_workflow_handle(incident_id)
        try:
            return await temporal_call(handle.query("view", result_type=IncidentView))
        except RPCError as exc:
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise ApiError(404, "not_found", f"no incident {incident_id}") from exc
            raise

    @app.post("/v1/incidents/{incident_id}/culprit", status_code=201)
    async def confirm_culprit(incident_id: str, request: Request) -> dict[str, Any]:
        """An operator confirms or rejects a change as the culprit: a label for the next training run."""
        require_token(request)
        body = await read_json(request, settings.max_body_bytes)
        label = _validated(CulpritLabel, body)
        client = await gateway.client()
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
                record_feedback, settings.feedback_file, incident_id, label.change_id, label.confirmed, bundle
            )
        except FeedbackError as exc:
            raise ApiError(400, "invalid_feedback", str(exc)) from exc
        return {"incident_id": incident_id, "change_id": record.change_id, "confirmed": record.confirmed}

    @app.post("/v1/incidents/{incident_id}/approval")
    async def approve(incident_id: str, request: Request) -> dict[str, Any]:
        require_token(request)
        body = await read_json(request, settings.max_body_bytes)
        decision = _validated(ApprovalDecision, {"source": "api", **body} if isinstance(body, dict) else body)
        client = await gateway.client()
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

    return app


def _metric_name(line: str) -> str:
    """The metric a line of the text exposition format is about (HELP/TYPE comments included)."""
    if line.startswith("# "):
        parts = line.split(" ", 3)
        return parts[2] if len(parts) > 2 else ""
    return line.split("{", 1)[0].split(" ", 1)[0]


async def _worker_step_metrics(url: str) -> bytes:
    """The worker process's step latencies (only backout_step_*: process metrics would clash)."""
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            text = (await http.get(url)).text
    except httpx.HTTPError:
        return b""
    kept = [line for line in text.splitlines() if _metric_name(line).startswith("backout_step_")]
    return ("\n".join(kept) + "\n").encode() if kept else b""


async def _list_incidents(client: Client, limit: int) -> list[dict[str, Any]]:
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


async def _refresh_incident_gauge(gateway: TemporalGateway) -> None:
    client = gateway.peek()
    if client is None:
        return
    try:
        items = await asyncio.wait_for(_list_incidents(client, 1000), timeout=3)
    except Exception:
        return
    counts: dict[str, int] = {}
    for item in items:
        counts[item["state"]] = counts.get(item["state"], 0) + 1
    INCIDENTS_BY_STATE.clear()
    for state, count in counts.items():
        INCIDENTS_BY_STATE.labels(state).set(count)
