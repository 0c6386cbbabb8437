"""The bench client against a stand-in API: it must send valid HA-duplicated v4 load and notice faults."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from api.sources.alertmanager import AlertmanagerPayload
from devstack.bench.benches import Target, run_ingest, run_storm
from devstack.bench.payloads import LoadShape, plan_notifications
from devstack.bench.runner import BenchError, RetryPolicy
from tests.infra.fake_api import FakeApiState, serve_fake_api
from worker.cli import app as cli_app

TOKEN = "bench-token"
FAST_RETRY = RetryPolicy(first_backoff_s=0.01, max_backoff_s=0.05, window_s=5)


def _target(url: str, token: str = TOKEN) -> Target:
    """The stand-in API has no Temporal behind it: no floor (tests/infra/test_bench_floor.py has one)."""
    return Target(url=url, token=token, concurrency=8, list_wait_s=2, retry=FAST_RETRY, floor=False)


def test_plan_has_growing_groups_and_ha_pairs() -> None:
    from datetime import UTC, datetime

    shape = LoadShape(groups=3, alerts_per_group=10, batches=4, replicas=2)
    plan = plan_notifications(shape, "run1", datetime(2026, 1, 1, tzinfo=UTC))
    assert len(plan) == shape.notifications == 24
    per_group_batch = Counter((n.group, n.batch) for n in plan)
    assert set(per_group_batch.values()) == {2}
    sizes = {(n.group, n.batch): len(n.fingerprints) for n in plan}
    assert [sizes[(0, b)] for b in range(4)] == [2, 5, 7, 10]
    assert [n.batch for n in plan] == sorted(n.batch for n in plan)
    keys = {AlertmanagerPayload.model_validate(n.body).incident_key().workflow_id() for n in plan}
    assert len(keys) == 3
    assert len({fp for n in plan for fp in n.fingerprints}) == shape.distinct_alerts


async def test_ingest_counts_one_incident_per_group_and_no_loss() -> None:
    state = FakeApiState(token=TOKEN)
    with serve_fake_api(state) as url:
        result = await run_ingest(_target(url), notifications=120, groups=6)
    assert result.ok, result.problems
    assert (result.notifications, result.incidents, result.lost) == (120, 6, 0)
    assert result.ha_duplicates == 60
    assert len(state.accepted_bodies) == 120
    assert result.p50_ms is not None and result.p99_ms is not None
    assert 0 < result.p50_ms <= result.p99_ms
    assert result.notifications_per_s > 0


async def test_ingest_reads_the_incidents_it_was_answered_with_when_the_listing_is_full() -> None:
    state = FakeApiState(token=TOKEN, listed_first=1000)  # the run's incidents are past the listing
    with serve_fake_api(state) as url:
        result = await run_ingest(_target(url), notifications=40, groups=4)
    assert result.ok, result.problems
    assert (result.incidents, result.lost) == (4, 0)


async def test_storm_retries_503_and_accounts_for_every_alert() -> None:
    state = FakeApiState(token=TOKEN, fail_every=3)
    with serve_fake_api(state) as url:
        result = await run_storm(_target(url), alerts=200, groups=10, batches=5)
    assert result.ok, result.problems
    assert result.retries > 0
    assert result.incidents_opened == 10
    assert (result.alerts_held, result.alerts_lost, result.notifications_lost) == (200, 0, 0)
    # 10 groups x (4+8+12+16+20 alerts) x 2 replicas
    assert result.alert_deliveries == 1200
    assert result.duplicates_absorbed == 1200 - 200
    assert len(state.accepted_bodies) == result.notifications == 100


async def test_storm_reports_incidents_split_per_replica() -> None:
    state = FakeApiState(token=TOKEN, split_by_replica=True)
    with serve_fake_api(state) as url:
        result = await run_storm(_target(url), alerts=40, groups=4, batches=2)
    assert not result.ok
    assert result.incidents_opened == 8
    assert any("8 incidents opened for 4 groups" in p for p in result.problems)


async def test_ingest_counts_4xx_as_lost_without_retrying() -> None:
    state = FakeApiState(token=TOKEN, reject_group="g00001")
    with serve_fake_api(state) as url:
        result = await run_ingest(_target(url), notifications=40, groups=4)
    assert not result.ok
    assert result.lost == 10
    assert result.retries == 0
    assert result.incidents == 3


async def test_wrong_token_is_a_clear_error() -> None:
    with serve_fake_api(FakeApiState(token=TOKEN)) as url, pytest.raises(BenchError, match="sender token"):
        await run_ingest(_target(url, token="nope"), notifications=4, groups=2)


def test_cli_prints_json_and_exits_zero() -> None:
    with serve_fake_api(FakeApiState(token=TOKEN)) as url:
        outcome = CliRunner().invoke(
            cli_app,
            ["bench", "ingest", "--url", url, "--token", TOKEN, "--notifications", "20", "--groups", "5",
             "--list-wait-s", "2", "--no-floor", "--json"],
        )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    data = json.loads(outcome.stdout)
    assert {"notifications_per_s", "p50_ms", "p99_ms", "incidents", "lost"} <= set(data)
    assert (data["incidents"], data["lost"]) == (5, 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "--notifications", "10", "--groups", "3"], "multiple of 2 x --groups"),
        (["storm", "--alerts", "10", "--groups", "3"], "multiple of --groups"),
        (["storm", "--alerts", "10", "--groups", "5", "--batches", "3"], "batches (3) cannot exceed"),
        (
            ["ingest", "--url", "http://127.0.0.1:9", "--notifications", "4", "--groups", "2"],
            "no backout API",
        ),
        (["latency", "--kubeconfig", "/nonexistent/kubeconfig"], "no such file"),
    ],
)
def test_cli_bad_input_exits_2_with_message(args: list[str], message: str) -> None:
    outcome = CliRunner().invoke(cli_app, ["bench", *args])
    assert outcome.exit_code == 2
    assert message in outcome.stderr
    assert "Traceback" not in outcome.output
