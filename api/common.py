"""What every route shares: JSON errors, body reading and validation, the bearer token, the lazily
connected Temporal client and the services the app was built with."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from pydantic import BaseModel, ValidationError
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.changes_store import ChangeStore
from activities.incidents import IncidentBehaviour
from api.deliveries import Deliveries, IncidentThrottle
from config import Settings
from incidents.bundle import describe_validation_error

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


@dataclass
class Services:
    """What the routes use, built once per app (`services(request)` finds it)."""

    settings: Settings
    gateway: TemporalGateway
    deliveries: Deliveries
    behaviour: IncidentBehaviour
    store: ChangeStore
    throttle: IncidentThrottle


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


MAX_JSON_DEPTH = 32


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, at most `limit` bytes (a declared larger body is refused before reading;
    api/transport.py also caps and times out every read below this)."""
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
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """JSON text -> value; malformed, non-finite numbers and nesting deeper than MAX_JSON_DEPTH are 400s."""
    if not raw:
        raise ApiError(400, "empty_body", "request body is empty")
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except UnicodeDecodeError as exc:
        raise ApiError(400, "malformed_json", f"body is not UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise ApiError(400, "too_deep", f"JSON nests deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:  # NaN / Infinity, or a number too large to read
        raise ApiError(400, "malformed_json", str(exc)) from exc
    depth = json_depth(value)
    if depth > MAX_JSON_DEPTH:
        raise ApiError(400, "too_deep", f"JSON nests {depth} levels; the limit is {MAX_JSON_DEPTH}")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {text[:40]} is out of range")
    return number


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in `value` (a scalar is 0), without recursion."""
    deepest = 0
    # Level by level, containers only: the scalars, most of a body, are looked at once, never stacked.
    level = [value] if type(value) in _CONTAINERS else []
    while level:
        deepest += 1
        if deepest > MAX_JSON_DEPTH:
            return deepest
        below: list[Any] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            below += [child for child in children if type(child) in _CONTAINERS]
        level = below
    return deepest


# What json.loads builds for objects and arrays (exactly these types, never subclasses).
_CONTAINERS = (dict, list)


async def read_json(request: Request, limit: int) -> Any:
    """Raw body with a size cap, the content type checked, then JSON-decoded."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(
            415, "unsupported_media_type", f"content type must be application/json, got {content_type!r}"
        )
    return parse_json(await read_body(request, limit))


async def json_body(request: Request) -> Any:
    """The request's JSON body under the configured cap (the route's dependency authenticated first)."""
    return await read_json(request, services(request).settings.max_body_bytes)


def validated(model: type[ModelT], body: Any) -> ModelT:
    """The body as `model`, or a 422 naming every field that is wrong."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ApiError(422, "invalid_payload", describe_validation_error(exc)) from exc
    except (OverflowError, RecursionError) as exc:
        raise ApiError(422, "invalid_payload", f"a value is out of range: {exc}") from exc


async def temporal_call(call: Awaitable[Any]) -> Any:
    """Await a Temporal call; an unreachable or overloaded Temporal becomes a 503."""
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
