"""`backout eval baseline|schedule|history` input handling, and runner retries against a failing service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evals.golden import golden_path, load_golden_set, load_manifest
from evals.runner import run_items
from tests.evals.helpers import results_from_flags, write_results
from tests.fixtures.simservice import SimService, free_port, start_simservice, stop_simservice
from worker.cli.evals import app

SHIPPED = Path(__file__).resolve().parents[2] / "evals" / "sets" / "orbitdesk" / "manifest.yaml"
runner = CliRunner()


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("BACKOUT_STATE_DIR", str(state))
    return state


def test_schedule_rejects_bad_interval_and_reports_unreachable_temporal(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(app, ["schedule", str(SHIPPED), "--every", "5x"])
    assert result.exit_code == 2 and "--every '5x'" in result.output
    result = runner.invoke(app, ["schedule", str(SHIPPED), "--every", "3s"])
    assert result.exit_code == 2 and "at least 10s" in result.output
    monkeypatch.setenv("BACKOUT_TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
    result = runner.invoke(app, ["schedule", str(SHIPPED), "--every", "15m"])
    assert result.exit_code == 1 and "cannot reach Temporal" in result.output


def test_baseline_pins_files_and_rejects_unknown_runs(state_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["baseline", str(SHIPPED), "--from", "no-such-run"])
    assert result.exit_code == 2 and "neither a stored run id" in result.output
    files = [
        write_results(tmp_path / f"r{k}.jsonl", results_from_flags([True] * 9 + [k == 0])) for k in range(3)
    ]
    args = ["baseline", str(SHIPPED), "--json"]
    for file in files:
        args += ["--from", str(file)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    pin = json.loads(result.output)
    assert pin["run_ids"] == ["r0", "r1", "r2"] and pin["n"] == 10
    assert pin["pass_rate"] == pytest.approx(28 / 30)
    history = runner.invoke(app, ["history", str(SHIPPED), "--json"])
    assert history.exit_code == 0 and json.loads(history.output) == []


@pytest.fixture
def failing_service(tmp_path: Path) -> Iterator[SimService]:
    service = start_simservice(tmp_path, "--error-rate", "0.3", "--latency-scale", "0", "--seed", "3")
    try:
        yield service
    finally:
        stop_simservice(service)


async def test_runner_retries_server_errors(failing_service: SimService) -> None:
    manifest = load_manifest(SHIPPED).model_copy(
        update={"retries": 3, "scorers": load_manifest(SHIPPED).scorers}
    )
    items = [item for item in load_golden_set(golden_path(SHIPPED, manifest)) if not item.scorer][:40]
    results = await run_items(manifest, items, failing_service.url)
    retried = [result for result in results if result.attempts > 1]
    assert retried, "a 30% error rate must have needed retries"
    failed = [result for result in results if result.error]
    assert len(failed) <= 3  # 0.3^4 per item
    assert all("HTTP 500" in (result.error or "") and not result.passed for result in failed)
    assert sum(result.passed for result in results) >= 30
