"""The ingest floor (bare signal-with-start calls from a plain Temporal client) measured beside the
bench's load, the ratios and targets computed from it, and the memory the benches report."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from temporalio.client import Client

from api.health import _worker_step_metrics
from devstack.bench.benches import TARGET_P99_RATIO, TARGET_THROUGHPUT_RATIO, Target, _Run, run_ingest
from devstack.bench.ingest_floor import IngestFloor
from devstack.bench.machine import Load, Memory, memory_from_metrics
from devstack.bench.payloads import LoadShape, plan_notifications
from devstack.bench.runner import Delivery, RetryPolicy, RunIncidents, SendReport
from tests.infra.fake_api import FakeApiState, serve_fake_api
from worker.temporal_server import TemporalDevServer

TOKEN = "bench-token"


@pytest.mark.temporal
async def test_ingest_measures_the_floor_on_the_same_server_and_leaves_nothing_running(
    temporal_server: TemporalDevServer,
) -> None:
    target = Target(
        url="",
        token=TOKEN,
        concurrency=4,
        list_wait_s=2,
        retry=RetryPolicy(first_backoff_s=0.01, max_backoff_s=0.05, window_s=5),
        temporal_address=temporal_server.address,
    )
    with serve_fake_api(FakeApiState(token=TOKEN)) as url:
        result = await run_ingest(target.model_copy(update={"url": url}), notifications=40, groups=4)
    assert result.ok, result.problems
    floor = result.floor
    assert floor is not None
    assert (floor.calls, floor.errors, floor.concurrency) == (40, 0, 4)
    assert floor.p50_ms is not None and floor.p99_ms is not None and 0 < floor.p50_ms <= floor.p99_ms
    # The ratios are backout's figures over the floor's, as reported.
    assert result.throughput_ratio == pytest.approx(
        result.notifications_per_s / floor.calls_per_s, rel=0.02, abs=0.006
    )
    assert result.p99_ms is not None
    assert result.p99_ratio == pytest.approx(result.p99_ms / floor.p99_ms, abs=0.006)
    assert result.targets_met == (not result.target_misses)
    client = await Client.connect(temporal_server.address)
    running = [
        execution.id
        async for execution in client.list_workflows(
            f'WorkflowType = "BackoutBenchIngestFloor" AND ExecutionStatus = "Running" '
            f'AND TaskQueue = "backout-bench-floor-{result.run_id}"'
        )
    ]
    assert running == []


def _run(latencies_s: list[float], wall_s: float, floor: IngestFloor) -> _Run:
    plan = plan_notifications(
        LoadShape(groups=2, alerts_per_group=1, batches=1, replicas=len(latencies_s) // 2),
        "r",
        datetime.now(UTC),
    )
    deliveries = [
        Delivery(notification=i, accepted=True, attempts=1, latency_s=s) for i, s in enumerate(latencies_s)
    ]
    return _Run(
        run_id="r",
        plan=plan,
        sent=SendReport(deliveries=deliveries, wall_s=wall_s),
        found=RunIncidents(ids=set(), runs=0, states={}),
        floor=floor,
        load=Load.now(),
        memory=Memory(),
        background=None,
    )


def _floor(calls_per_s: float, p99_ms: float) -> IngestFloor:
    return IngestFloor(
        temporal_address="x",
        calls=4,
        concurrency=1,
        wall_s=1.0,
        calls_per_s=calls_per_s,
        p50_ms=p99_ms / 2,
        p99_ms=p99_ms,
        errors=0,
    )


def test_comparison_names_each_missed_target() -> None:
    run = _run([0.01] * 4, wall_s=1.0, floor=_floor(calls_per_s=4.0, p99_ms=10.0))
    met = run.comparison()
    assert (met["throughput_ratio"], met["p99_ratio"], met["targets_met"]) == (1.0, 1.0, True)

    slow = 4.0 / TARGET_THROUGHPUT_RATIO * 1.5  # the floor far faster than backout
    missed = _run(
        [0.01] * 4, wall_s=1.0, floor=_floor(calls_per_s=slow, p99_ms=10.0 / TARGET_P99_RATIO / 1.5)
    )
    figures = missed.comparison()
    assert figures["targets_met"] is False
    assert figures["throughput_ratio"] < TARGET_THROUGHPUT_RATIO
    assert figures["p99_ratio"] > TARGET_P99_RATIO
    assert [m.split()[0] for m in figures["target_misses"]] == ["throughput", "p99"]


def test_comparison_without_a_floor_claims_nothing() -> None:
    run = _run([0.01] * 4, wall_s=1.0, floor=_floor(calls_per_s=0.0, p99_ms=10.0))
    assert "targets_met" not in run.comparison()


def test_memory_is_read_from_the_api_and_worker_metrics() -> None:
    text = (
        "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 104857600.0\n"
        "backout_worker_resident_memory_bytes 52428800.0\nother_metric 1.0\n"
    )
    assert memory_from_metrics(text) == Memory(api_rss_mib=100.0, worker_rss_mib=50.0)
    assert memory_from_metrics("other_metric 1.0\n") == Memory()


@contextmanager
def _serve(text: str) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()


async def test_the_api_re_exports_the_worker_memory_under_its_own_name() -> None:
    worker = (
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
        "# TYPE process_resident_memory_bytes gauge\n"
        "process_resident_memory_bytes 7340032.0\n"
        "process_cpu_seconds_total 3.0\n"
        "backout_step_seconds_count 2.0\n"
    )
    with _serve(worker) as url:
        text = (await _worker_step_metrics(url)).decode()
    assert "backout_worker_resident_memory_bytes 7340032.0" in text
    assert "# TYPE backout_worker_resident_memory_bytes gauge" in text
    assert "backout_step_seconds_count 2.0" in text
    assert "process_" not in text  # the API's own process metrics keep their names
    assert memory_from_metrics(text).worker_rss_mib == 7.0
