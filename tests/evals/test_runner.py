"""The runner and `backout eval run` against a real simservice process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from evals.golden import load_results
from tests.fixtures.simservice import SimService, free_port
from worker.cli.evals import app

SHIPPED = Path(__file__).resolve().parents[2] / "evals" / "sets" / "orbitdesk" / "manifest.yaml"
runner = CliRunner()


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("BACKOUT_STATE_DIR", str(state))
    return state


@pytest.fixture
def good_service(simservice: SimService) -> Iterator[SimService]:
    simservice.deploy(model_version="llm-v1", prompt_version="prompt-v1", corpus_version="corpus-v1")
    yield simservice
    simservice.deploy(model_version="llm-v1", prompt_version="prompt-v1", corpus_version="corpus-v1")


def test_run_writes_results_and_summary(good_service: SimService, state_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    result = runner.invoke(
        app, ["run", str(SHIPPED), "--endpoint", good_service.url, "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == summary["n"] >= 50
    assert {"id", "score", "passed", "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens"} <= set(
        lines[0]
    )
    assert summary["pass_rate"] >= 0.85
    assert summary["errors"] == 0
    assert all(line["ttft_ms"] is not None and line["ttft_ms"] <= line["latency_ms"] for line in lines)
    assert all(line["completion_tokens"] > 0 for line in lines)
    stored = list((state_dir / "evals" / "orbitdesk-assistant" / "runs").glob("*.jsonl"))
    assert len(stored) == 1 and len(load_results(stored[0])) == summary["n"]

    human = runner.invoke(app, ["run", str(SHIPPED), "--endpoint", good_service.url])
    assert human.exit_code == 0
    assert "passed" in human.output and "by tag:" in human.output


def test_bad_model_version_lowers_the_pass_rate(
    good_service: SimService, state_dir: Path, tmp_path: Path
) -> None:
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    assert (
        runner.invoke(
            app, ["run", str(SHIPPED), "--endpoint", good_service.url, "--out", str(good)]
        ).exit_code
        == 0
    )
    good_service.deploy(model_version="llm-v2-bad")
    assert (
        runner.invoke(app, ["run", str(SHIPPED), "--endpoint", good_service.url, "--out", str(bad)]).exit_code
        == 0
    )
    good_rate = sum(r.passed for r in load_results(good)) / len(load_results(good))
    bad_rate = sum(r.passed for r in load_results(bad)) / len(load_results(bad))
    assert bad_rate < good_rate - 0.25
    verdict = runner.invoke(app, ["compare", str(good), str(bad), "--manifest", str(SHIPPED), "--json"])
    assert verdict.exit_code == 1
    assert json.loads(verdict.output)["regression"] is True


def test_bad_prompt_breaks_retrieval_and_rollback_heals(good_service: SimService) -> None:
    body = {"messages": [{"role": "user", "content": "How long is the Orbitdesk free trial?"}]}

    def precision_after(requests: int) -> float:
        for _ in range(requests):
            httpx.post(f"{good_service.url}/v1/chat/completions", json=body, timeout=10)
        metrics = httpx.get(f"{good_service.url}/metrics", timeout=10).text
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("simservice_retrieval_precision{") and 'prompt_version="prompt-v2-bad"' in line
        ]
        return values[-1] if values else 1.0

    good_service.deploy(prompt_version="prompt-v2-bad")
    assert precision_after(30) < 0.7
    good_service.deploy(prompt_version="prompt-v1")
    answers = [
        httpx.post(f"{good_service.url}/v1/chat/completions", json=body, timeout=10).json() for _ in range(10)
    ]
    assert sum("14 days" in a["choices"][0]["message"]["content"] for a in answers) >= 9
    metrics = httpx.get(f"{good_service.url}/metrics", timeout=10).text
    stale = [
        line
        for line in metrics.splitlines()
        if line.startswith("simservice_retrieval_precision{") and "prompt-v2-bad" in line
    ]
    assert stale == []  # no stale gauge keeps an alert firing after the rollback
    assert 'simservice_retrieval_precision{corpus_version="corpus-v1",prompt_version="prompt-v1"}' in metrics


def test_metrics_expose_vllm_series(good_service: SimService) -> None:
    httpx.post(
        f"{good_service.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "What is the API rate limit per token?"}]},
        timeout=10,
    )
    metrics = httpx.get(f"{good_service.url}/metrics", timeout=10).text
    for series in (
        "vllm:gpu_cache_usage_perc",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:e2e_request_latency_seconds_bucket",
        "vllm:num_requests_waiting",
        "simservice_requests_total",
        "simservice_retrieval_precision",
    ):
        assert series in metrics, series


def test_unreachable_service_exits_nonzero_and_writes_nothing(state_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    dead = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["run", str(SHIPPED), "--endpoint", dead, "--out", str(out)])
    assert result.exit_code == 1
    assert "service unreachable" in result.output and "nothing written" in result.output
    assert not out.exists()
    assert not list(tmp_path.glob("*.partial"))
    assert not (state_dir / "evals" / "orbitdesk-assistant" / "runs").exists()


def test_run_with_bad_manifest_exits_2(state_dir: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("name: x\nservice: rag\nconcurrency: 0\n")
    result = runner.invoke(app, ["run", str(manifest)])
    assert result.exit_code == 2 and "concurrency" in result.output
