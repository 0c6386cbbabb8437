"""Temporal for production: temporal-server (Go module) on PostgreSQL (Debian), started by
devstack.temporal_sql, runs a real backout incident with the real worker, and stops cleanly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from activities.incidents import IncidentBehaviour, open_or_join
from activities.kube.client import KubeApis
from config import Settings
from devstack.cluster.local import LocalCluster
from devstack.temporal_sql import TemporalSql, TemporalSqlState
from devstack.tools import TEMPORAL
from incidents.models import TERMINAL_STATES, IncidentView
from tests.kube.helpers import create_deployment, current_images, set_image
from tests.pipeline.payloads import open_request
from worker.temporal_client import connect

pytestmark = [pytest.mark.temporal, pytest.mark.kube, pytest.mark.slow, pytest.mark.timeout(900)]

RUNBOOKS = Path(__file__).parent / "runbooks"


def drill_settings(temporal: TemporalSqlState, state_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "state_dir": state_dir,
        "temporal_address": temporal.address,
        "temporal_namespace": temporal.namespace,
        "task_queue": f"prod-{uuid.uuid4().hex[:8]}",
        "runbook_dir": RUNBOOKS,
        "incident_settle_s": 0.5,
        "incident_cooldown_s": 0.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def worker_environment(settings: Settings, extra: dict[str, str]) -> dict[str, str]:
    """A backout process's environment: `settings` as BACKOUT_* variables, no inherited kubeconfig."""
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "BACKOUT_KUBECONFIG")}
    env.update(
        {
            "BACKOUT_TEMPORAL_ADDRESS": settings.effective_temporal_address,
            "BACKOUT_TEMPORAL_NAMESPACE": settings.temporal_namespace,
            "BACKOUT_TASK_QUEUE": settings.task_queue,
            "BACKOUT_STATE_DIR": str(settings.state_dir),
            "BACKOUT_RUNBOOK_DIR": str(settings.runbook_dir),
            "BACKOUT_ALLOWED_NAMESPACES": ",".join(settings.allowed_namespaces),
            **extra,
        }
    )
    return env


def start_worker(settings: Settings, extra_env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`backout worker` as its own process, configured only through its environment."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with (settings.state_dir / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "worker"],
            env=worker_environment(settings, extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=10)


async def run_drill(client: Client, settings: Settings, service: str, namespace: str) -> IncidentView:
    """Open a ProdDrill incident, wait until its rollback is decided (or it ends), resolve the alert,
    return the final view."""
    handle = await open_or_join(
        client, IncidentBehaviour(settings), open_request(service, namespace, name="ProdDrill")
    )
    for _ in range(600):
        view = await handle.query("view", result_type=IncidentView)
        if any(record.action == "rollback" for record in view.actions) or view.state in TERMINAL_STATES:
            break
        await asyncio.sleep(0.3)
    else:
        pytest.fail(f"no rollback decided: {[e.message for e in view.timeline]}")
    try:  # the alert resolves; an incident that already recovered and closed needs no word of it
        await handle.signal(
            "add_signal", open_request(service, namespace, status="resolved", name="ProdDrill").signal
        )
    except RPCError as exc:
        if "already completed" not in exc.message:
            raise
    return IncidentView.model_validate(await asyncio.wait_for(handle.result(), timeout=180))


async def test_a_backout_incident_runs_on_temporal_on_postgresql(
    production_temporal: TemporalSqlState,
    kube_cluster: LocalCluster,
    kube_apis: KubeApis,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    assert production_temporal.server_version == TEMPORAL.version
    await asyncio.to_thread(create_deployment, kube_apis, kube_namespace, "web", "web:v1", replicas=1)
    await asyncio.to_thread(set_image, kube_apis, kube_namespace, "web", "web:v2")
    settings = drill_settings(
        production_temporal,
        tmp_path / "state",
        kubeconfig=kube_cluster.kubeconfig,
        allowed_namespaces=[kube_namespace],
    )
    worker = start_worker(settings, {"BACKOUT_KUBECONFIG": str(kube_cluster.kubeconfig)})
    try:
        client = await connect(settings, attempts=10)
        view = await run_drill(client, settings, "web", kube_namespace)
    finally:
        stop_worker(worker)
    log = (settings.state_dir / "worker.log").read_text(encoding="utf-8", errors="replace")
    assert view.state == "recovered", ([e.message for e in view.timeline], log[-3000:])
    assert [r.outcome for r in view.actions if r.action == "rollback"] == ["Successful"]
    assert current_images(kube_apis, kube_namespace, "web") == ["web:v1"]
    # The run's history lives in PostgreSQL: the server lists it through SQL visibility.
    listed = [w async for w in client.list_workflows(f"WorkflowId = '{view.id}'")]
    assert [w.status.name if w.status else None for w in listed if w.id == view.id] == ["COMPLETED"]


def test_the_server_restarts_on_its_data_and_stops_cleanly(tmp_path: Path) -> None:
    """A second instance of its own: stop keeps the database, start finds the namespace again, purge wipes it."""
    server = TemporalSql(tmp_path / "own", namespace="restart-check", durable=False)
    first = server.start()
    try:
        assert server.status().healthy
        data_dir = Path(first.postgres_data_dir)
        assert (data_dir / "PG_VERSION").exists()
        assert server.stop() == ["temporal-server", "postgresql"]
        status = server.status()
        assert not status.up and not status.healthy
        second = server.start()
        assert second.address != "" and server.status().healthy
        assert Path(second.postgres_data_dir) == data_dir
    finally:
        server.stop(purge=True)
    assert not data_dir.exists()
    assert server.read_state() is None
