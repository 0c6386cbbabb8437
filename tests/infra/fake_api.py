"""A tiny stand-in for backout's webhook and incident endpoints, to test the bench client itself.

It parses notifications with the real `api.sources.alertmanager.AlertmanagerPayload` and groups
them by the real incident key; knobs inject the faults the bench must notice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from pydantic import ValidationError

from api.sources.alertmanager import AlertmanagerPayload
from devstack.process import free_port


@dataclass
class FakeApiState:
    token: str
    # Every Nth webhook POST answers 503 (0 = never): the bench must retry it.
    fail_every: int = 0
    # Key incidents by the sending replica too: the bug the bench must catch as too many incidents.
    split_by_replica: bool = False
    # Answer 400 to notifications of this group label value: the bench must count them lost.
    reject_group: str | None = None
    # Incidents of another namespace listed before the bench's own (the listing shows 1000 at most).
    listed_first: int = 0
    posts: int = 0
    accepted_bodies: list[dict[str, Any]] = field(default_factory=list)
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def build_app(state: FakeApiState) -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "temporal": "ok"}

    @app.post("/v1/alerts/alertmanager", status_code=202)
    async def webhook(request: Request) -> dict[str, Any]:
        if request.headers.get("authorization") != f"Bearer {state.token}":
            raise HTTPException(401, "missing or wrong bearer token")
        body = await request.json()
        try:
            payload = AlertmanagerPayload.model_validate(body)
        except ValidationError as exc:
            raise HTTPException(422, str(exc)) from exc
        with state.lock:
            state.posts += 1
            if state.fail_every and state.posts % state.fail_every == 0:
                raise HTTPException(503, "injected overload")
            if state.reject_group and payload.groupLabels.get("bench_group") == state.reject_group:
                raise HTTPException(400, "injected rejection")
            key = payload.incident_key().workflow_id()
            if state.split_by_replica:
                key += "-replica-" + payload.externalURL.split("//")[1].split(".")[0]
            incident = state.incidents.setdefault(
                key,
                {"id": key, "state": "open", "service": payload.incident_key().service,
                 "namespace": payload.incident_key().namespace, "alerts": {}},
            )  # fmt: skip
            for alert in payload.alerts:
                incident["alerts"][alert.stable_fingerprint()] = alert.model_dump(mode="json")
            state.accepted_bodies.append(body)
        return {"incident_id": key, "status": "accepted"}

    @app.get("/v1/incidents")
    def incidents(limit: int = 200) -> dict[str, Any]:
        with state.lock:
            items = [{k: v for k, v in inc.items() if k != "alerts"} for inc in state.incidents.values()]
        others = [
            {"id": f"other-{i}", "namespace": "elsewhere", "state": "open"} for i in range(state.listed_first)
        ]
        return {"incidents": [*others, *items][:limit]}

    @app.get("/v1/incidents/{incident_id}")
    def incident(incident_id: str) -> dict[str, Any]:
        with state.lock:
            found = state.incidents.get(incident_id)
            if found is None:
                raise HTTPException(404, "no such incident")
            return {
                "id": found["id"],
                "alerts": [{"fingerprint": fp, **alert} for fp, alert in found["alerts"].items()],
            }

    return app


@contextmanager
def serve_fake_api(state: FakeApiState) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_app(state), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="fake-backout-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("fake API did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
