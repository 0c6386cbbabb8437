"""Record IncidentWorkflow histories for the replay test.

Run after an intended change to the workflow's command sequence:
    .venv/bin/python -m tests.pipeline.record_histories
Each history is committed under tests/pipeline/histories/; the replay test then fails
the build whenever current code would replay one of them differently.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from activities.incidents import IncidentBehaviour, open_or_join
from tests.fixtures.temporal import running_worker, settings_for, start_dev_server
from tests.pipeline.payloads import open_request
from worker.temporal_client import connect

HISTORIES = Path(__file__).parent / "histories"


async def record() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_dev_server(None)
        try:
            settings = settings_for(server, Path(tmp), incident_settle_s=1.0)
            client = await connect(settings, attempts=20)
            behaviour = IncidentBehaviour(settings)
            async with running_worker(client, settings):
                # 1. A firing alert with no candidate change: no runbook acts, a human is paged.
                unexplained = await open_or_join(client, behaviour, open_request("history-a"))
                await unexplained.result()
                # 2. Resolved during the settle window: never acts on a resolved alert.
                flapped = await open_or_join(client, behaviour, open_request("history-b"))
                await flapped.signal("add_signal", open_request("history-b", status="resolved").signal)
                await flapped.result()
            HISTORIES.mkdir(exist_ok=True)
            for name, handle in (("no_change_needs_human", unexplained), ("resolved_before_action", flapped)):
                history = await handle.fetch_history()
                (HISTORIES / f"{name}.json").write_text(json.dumps(json.loads(history.to_json()), indent=1))
                print(f"recorded {name}: {len(history.events)} events")
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(record())
