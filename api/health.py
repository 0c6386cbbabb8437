"""GET /healthz (no credential: the API, Temporal reachable, a worker polling the task queue) and
GET /metrics (the metrics or the operator token)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from activities.incidents import workflow_pollers
from api.auth import requires
from api.common import TemporalGateway, services
from api.incidents import list_incidents

router = APIRouter()

INCIDENTS_BY_STATE = Gauge("backout_incidents", "Incidents known to Temporal visibility, by state", ["state"])


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    """The API is up; `temporal` says whether it reaches Temporal, `worker` whether a worker
    polls the task queue (without one, accepted alerts open incidents that nobody works)."""
    found = services(request)
    try:
        client = await found.gateway.client()
        await asyncio.wait_for(client.service_client.check_health(), timeout=2)
    except Exception:
        # No detail: /healthz answers anyone, and a connection error names hosts and ports.
        return {"status": "ok", "temporal": "unreachable", "worker": "unknown"}
    queue = found.settings.task_queue
    try:
        pollers = await asyncio.wait_for(workflow_pollers(client, queue), timeout=2)
        worker = "ok" if pollers else f"no worker polls task queue {queue}"
    except Exception as exc:
        worker = f"unknown: {exc}"
    return {"status": "ok", "temporal": "ok", "worker": worker}


@router.get("/metrics", dependencies=[Depends(requires("metrics", "operator"))])
async def metrics(request: Request) -> Response:
    found = services(request)
    await _refresh_incident_gauge(found.gateway)
    body = generate_latest()
    if found.settings.worker_metrics_url:
        body += await _worker_step_metrics(found.settings.worker_metrics_url)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _metric_name(line: str) -> str:
    """The metric a line of the text exposition format is about (HELP/TYPE comments included)."""
    if line.startswith("# "):
        parts = line.split(" ", 3)
        return parts[2] if len(parts) > 2 else ""
    return line.split("{", 1)[0].split(" ", 1)[0]


# The worker's own process metrics would clash with the API's: the ones worth seeing are renamed.
WORKER_PROCESS_METRICS = {"process_resident_memory_bytes": "backout_worker_resident_memory_bytes"}


async def _worker_step_metrics(url: str) -> bytes:
    """The worker process's step latencies (backout_step_*) and its resident memory
    (as backout_worker_resident_memory_bytes)."""
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            text = (await http.get(url)).text
    except httpx.HTTPError:
        return b""
    kept: list[str] = []
    for line in text.splitlines():
        name = _metric_name(line)
        if name.startswith("backout_step_"):
            kept.append(line)
        elif name in WORKER_PROCESS_METRICS:
            kept.append(line.replace(name, WORKER_PROCESS_METRICS[name], 1))
    return ("\n".join(kept) + "\n").encode() if kept else b""


async def _refresh_incident_gauge(gateway: TemporalGateway) -> None:
    client = gateway.peek()
    if client is None:
        return
    try:
        items = await asyncio.wait_for(list_incidents(client, 1000), timeout=3)
    except Exception:
        return
    counts: dict[str, int] = {}
    for item in items:
        counts[item["state"]] = counts.get(item["state"], 0) + 1
    INCIDENTS_BY_STATE.clear()
    for state, count in counts.items():
        INCIDENTS_BY_STATE.labels(state).set(count)
