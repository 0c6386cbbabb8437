"""The API application: the shared services, JSON errors, request metrics, and one router per concern."""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from activities.changes_store import ChangeStore, StoreUnavailable
from activities.incidents import IncidentBehaviour
from api import changes, docs, health, incidents, slack, sources
from api.common import ClientFactory, Services, TemporalGateway
from api.deliveries import Deliveries, IncidentThrottle
from api.transport import BodyLimits, BodyTimeout, BodyTooLarge
from config import Settings

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter("backout_http_requests_total", "HTTP requests", ["route", "method", "status"])
HTTP_LATENCY = Histogram("backout_http_request_duration_seconds", "HTTP request latency", ["route"])


def create_app(
    settings: Settings, client_factory: ClientFactory, temporal_ui_url: str | None = None
) -> FastAPI:
    # API docs are off unless enabled; then /openapi.json takes the operator token (api/docs.py).
    app = FastAPI(title="backout", version="0.1.0", openapi_url=None, docs_url=None, redoc_url=None)
    gateway = TemporalGateway(client_factory)
    app.state.services = Services(
        settings=settings,
        gateway=gateway,
        deliveries=Deliveries(ttl_s=settings.duplicate_window_s),
        behaviour=IncidentBehaviour(settings, temporal_ui_url=temporal_ui_url),
        store=ChangeStore.of(settings),
        throttle=IncidentThrottle(
            settings.max_notifications_per_incident_per_minute,
            settings.max_alert_bytes_per_incident_per_hour,
            replicas=settings.api_replicas,
        ),
    )
    # The Slack interactions router reads these two.
    app.state.settings = settings
    app.state.gateway = gateway

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

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse(
            {"error": "payload_too_large", "detail": str(exc)},
            status_code=413,
            headers={"Connection": "close"},
        )

    @app.exception_handler(BodyTimeout)
    async def body_timeout(request: Request, exc: BodyTimeout) -> JSONResponse:
        return JSONResponse(
            {"error": "body_timeout", "detail": str(exc)}, status_code=408, headers={"Connection": "close"}
        )

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        # The shared store (PostgreSQL, database_url) is away or refuses: nothing was written, and
        # the caller (a CI job reporting a change, an operator's label) retries. The log says where
        # and why; the answer says why without naming hosts or users.
        log.warning("%s", exc)
        return JSONResponse(
            {
                "error": "store_unavailable",
                "detail": f"the shared store of reported changes and culprit labels is unavailable "
                f"({exc.reason}); nothing was recorded, retry later",
                "reason": exc.reason,
            },
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # A bug, never bad input (that is a 4xx above): JSON all the same, and no details leak.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"error": "internal_error", "detail": f"{type(exc).__name__}; see the API log"}, status_code=500
        )

    for router in (health.router, *sources.routers(), changes.router, incidents.router, slack.router):
        app.include_router(router)
    if settings.api_docs:
        app.include_router(docs.router)
    app.add_middleware(RequestMetrics)
    app.add_middleware(BodyLimits, settings=settings)
    return app


class RequestMetrics:
    """Counts and times every request by route template, method and status (pure ASGI: an error
    raised while the body is read reaches the routes' exception handlers unwrapped)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(route, scope["method"], str(status)).inc()
            HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)
