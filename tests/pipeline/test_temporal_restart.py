"""The embedded Temporal dev server keeps every incident in its SQLite file across a hard restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from activities.incidents import IncidentBehaviour, open_or_join
from incidents.models import IncidentView
from tests.fixtures.temporal import running_worker, settings_for
from tests.pipeline.payloads import open_request
from worker.temporal_client import connect
from worker.temporal_server import DevServerConfig, TemporalDevServer, free_port

pytestmark = pytest.mark.temporal


async def test_incidents_survive_a_killed_and_restarted_temporal_server(tmp_path: Path) -> None:
    config = DevServerConfig(db_file=tmp_path / "temporal.sqlite", port=free_port(), ui_port=None)
    server = TemporalDevServer(config)
    server.start()
    settings = settings_for(server, tmp_path / "state", incident_settle_s=2.0)
    try:
        client = await connect(settings, attempts=20)
        behaviour = IncidentBehaviour(settings)
        opened = [(await open_or_join(client, behaviour, open_request(f"svc-{i}"))).id for i in range(5)]
    finally:
        server.kill()  # as a crash would: no clean shutdown

    server = TemporalDevServer(config)
    server.start()
    try:
        client = await connect(settings, attempts=40)
        async with running_worker(client, settings):
            finished = [
                IncidentView.model_validate(
                    await asyncio.wait_for(client.get_workflow_handle(i).result(), timeout=120)
                )
                for i in opened
            ]
    finally:
        server.stop()
    assert [view.id for view in finished] == opened
    assert all(view.closed_at is not None for view in finished)
    assert all(any(e.step == "open" for e in view.timeline) for view in finished)
