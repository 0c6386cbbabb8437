"""Send a planned load to a backout API the way Alertmanager would, then count what it made of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
from pydantic import BaseModel, Field

from devstack.bench.payloads import Notification, bench_namespace

WEBHOOK_PATH = "/v1/alerts/alertmanager"


class BenchError(RuntimeError):
    """The bench cannot run (no API at the URL, wrong token, ...); the message says why."""


class RetryPolicy(BaseModel):
    """Alertmanager-like: retry 5xx and transport errors with backoff; a 4xx drops the notification."""

    first_backoff_s: float = Field(default=0.2, gt=0)
    max_backoff_s: float = Field(default=5.0, gt=0)
    window_s: float = Field(default=120.0, gt=0)
    request_timeout_s: float = Field(default=30.0, gt=0)


class Delivery(BaseModel):
    notification: int
    accepted: bool
    attempts: int
    latency_s: float
    status: int | None = None
    incident_id: str | None = None
    error: str | None = None


class SendReport(BaseModel):
    deliveries: list[Delivery]
    wall_s: float

    @property
    def accepted(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.accepted]

    @property
    def lost(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.accepted]

    def latency_ms(self, quantile: float) -> float | None:
        return percentile_ms([d.latency_s for d in self.accepted], quantile)


def percentile_ms(seconds: Sequence[float], quantile: float) -> float | None:
    """The quantile of durations in seconds, in milliseconds (None for no durations)."""
    if not seconds:
        return None
    return round(float(np.percentile(seconds, quantile * 100)) * 1000, 2)


async def drain(count: int, concurrency: int, work: Callable[[int], Awaitable[None]]) -> float:
    """`concurrency` tasks take the indexes 0..count-1 in order, each running `work(index)` to the
    end before taking the next; the wall time of the whole."""
    indexes = iter(range(count))

    async def worker() -> None:
        for index in indexes:
            await work(index)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def check_api(client: httpx.AsyncClient, token: str | None) -> None:
    """Fail early and clearly: API reachable, Temporal connected, token accepted."""
    try:
        health = await client.get("/healthz")
    except httpx.HTTPError as exc:
        raise BenchError(
            f"no backout API at {client.base_url} ({exc or type(exc).__name__}): start one with "
            "`backout up` or pass --spawn"
        ) from exc
    if health.status_code != 200:
        raise BenchError(f"{client.base_url}/healthz answered HTTP {health.status_code}")
    temporal = health.json().get("temporal")
    if temporal != "ok":
        raise BenchError(f"backout API at {client.base_url} is not connected to Temporal: {temporal}")
    probe = await client.post(WEBHOOK_PATH, content=b"{}", headers=auth_headers(token))
    if probe.status_code == 401:
        raise BenchError("the API rejected the sender token (HTTP 401): pass --token or BACKOUT_SENDER_TOKEN")


async def _deliver(
    client: httpx.AsyncClient, index: int, notification: Notification, token: str | None, policy: RetryPolicy
) -> Delivery:
    started = time.perf_counter()
    backoff = policy.first_backoff_s
    attempts = 0
    last_status: int | None = None
    last_error = ""
    while True:
        attempts += 1
        try:
            response = await client.post(WEBHOOK_PATH, json=notification.body, headers=auth_headers(token))
            last_status = response.status_code
            if 200 <= response.status_code < 300:
                body: Any = response.json() if response.content else {}
                incident = body.get("incident_id") if isinstance(body, dict) else None
                return Delivery(
                    notification=index,
                    accepted=True,
                    attempts=attempts,
                    latency_s=time.perf_counter() - started,
                    status=response.status_code,
                    incident_id=incident,
                )
            last_error = response.text[:300]
            if response.status_code < 500:
                break
        except httpx.HTTPError as exc:
            last_status = None
            last_error = str(exc) or type(exc).__name__
        if time.perf_counter() - started + backoff > policy.window_s:
            break
        await asyncio.sleep(backoff)
        backoff = min(backoff * 1.5, policy.max_backoff_s)
    return Delivery(
        notification=index,
        accepted=False,
        attempts=attempts,
        latency_s=time.perf_counter() - started,
        status=last_status,
        error=last_error,
    )


async def send_all(
    client: httpx.AsyncClient,
    notifications: Sequence[Notification],
    token: str | None,
    concurrency: int,
    policy: RetryPolicy,
) -> SendReport:
    """`concurrency` senders drain the plan in order, each notification retried until accepted or dropped."""
    deliveries: list[Delivery] = []

    async def send(index: int) -> None:
        deliveries.append(await _deliver(client, index, notifications[index], token, policy))

    wall = await drain(len(notifications), concurrency, send)
    deliveries.sort(key=lambda d: d.notification)
    return SendReport(deliveries=deliveries, wall_s=wall)


class RunIncidents(BaseModel):
    ids: set[str]
    runs: int
    states: dict[str, int]


# GET /v1/incidents lists at most this many (the newest first).
LIST_CAP = 1000


async def incidents_of_run(
    client: httpx.AsyncClient,
    run_id: str,
    expected: int,
    list_wait_s: float,
    answered: Sequence[str] = (),
) -> RunIncidents:
    """Incidents (distinct workflow ids) the API lists for this run; waits up to `list_wait_s` for visibility.
    Where the listing is full (other incidents open beside the run's), the incidents the webhook
    answered with (`answered`) are read one by one instead."""
    namespace = bench_namespace(run_id)
    deadline = time.perf_counter() + list_wait_s
    while True:
        response = await client.get("/v1/incidents", params={"limit": LIST_CAP})
        if response.status_code != 200:
            raise BenchError(f"GET /v1/incidents answered HTTP {response.status_code}: {response.text[:300]}")
        listed = response.json().get("incidents", [])
        items = [item for item in listed if item.get("namespace") == namespace]
        if len(listed) >= LIST_CAP and len(items) < expected and answered:
            items = await _read_each(client, sorted(set(answered)), namespace)
        states: dict[str, int] = {}
        for item in items:
            states[str(item.get("state"))] = states.get(str(item.get("state")), 0) + 1
        found = RunIncidents(ids={item["id"] for item in items}, runs=len(items), states=states)
        if len(found.ids) >= expected or time.perf_counter() >= deadline:
            return found
        await asyncio.sleep(0.5)


async def _read_each(
    client: httpx.AsyncClient, incident_ids: list[str], namespace: str
) -> list[dict[str, Any]]:
    """The incidents of `namespace` among `incident_ids`, each read by id."""
    found: list[dict[str, Any]] = []
    for incident_id in incident_ids:
        response = await client.get(
            f"/v1/incidents/{quote(incident_id, safe='')}", params={"alerts_limit": 0}
        )
        if response.status_code == 200 and response.json().get("namespace", namespace) == namespace:
            found.append({"id": incident_id, **response.json()})
    return found


async def alerts_held(client: httpx.AsyncClient, incident_ids: set[str], concurrency: int) -> set[str]:
    """Fingerprints of the alerts the incidents hold (their views dedup per fingerprint)."""
    semaphore = asyncio.Semaphore(concurrency)
    held: set[str] = set()

    async def fetch(incident_id: str) -> None:
        async with semaphore:
            response = await client.get(f"/v1/incidents/{quote(incident_id, safe='')}")
        if response.status_code != 200:
            raise BenchError(f"GET /v1/incidents/{incident_id} answered HTTP {response.status_code}")
        held.update(alert["fingerprint"] for alert in response.json().get("alerts", []))

    await asyncio.gather(*(fetch(incident_id) for incident_id in sorted(incident_ids)))
    return held
