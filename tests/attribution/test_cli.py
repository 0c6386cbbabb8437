"""`backout attribute` error handling and human output; `backout attribution train|bench` on small inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attribution.petshop import default_root
from worker.cli import app

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "attribution" / "001_recent_unrelated_deploy" / "bundle.json"
runner = CliRunner()


def _write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("version"), "version"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d["changes"][0].pop("service"), "changes.0.service"),
        (lambda d: d["changes"][1].update(started_at="yesterday"), "changes.1.started_at"),
        (lambda d: d["changes"].append(dict(d["changes"][0])), "changes"),
        (lambda d: d["incident"].update(id=""), "incident.id"),
        (lambda d: d["metrics"][0].update(name="tokens", bad_direction=None), "metrics.0"),
    ],
)
def test_invalid_bundle_exits_2_naming_the_field(tmp_path: Path, mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    document = json.loads(SCENARIO.read_text())
    mutate(document)
    result = runner.invoke(app, ["attribute", "--input", str(_write(tmp_path, document)), "--json"])
    assert result.exit_code == 2
    assert field in result.stderr
    assert "Traceback" not in result.output


def test_unreadable_inputs_exit_2(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["attribute", "--input", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    broken = runner.invoke(app, ["attribute", "--input", str(_write(tmp_path, "{not json"))])
    assert broken.exit_code == 2 and "invalid JSON" in broken.stderr


def test_bad_model_path_exits_2(tmp_path: Path) -> None:
    junk = tmp_path / "model.json"
    junk.write_text("not a model")
    result = runner.invoke(app, ["attribute", "--input", str(SCENARIO), "--model", str(junk)])
    assert result.exit_code == 2 and "cannot load" in result.stderr


def test_empty_changes_give_an_empty_ranking(tmp_path: Path) -> None:
    document = json.loads(SCENARIO.read_text())
    document["changes"] = []
    result = runner.invoke(app, ["attribute", "--input", str(_write(tmp_path, document)), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["ranking"] == []


def test_human_output_is_a_table_with_the_culprit_first() -> None:
    result = runner.invoke(app, ["attribute", "--input", str(SCENARIO)], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if "chg-" in line]
    assert "chg-retriever-4812" in lines[0]
    assert "probability" in result.stdout


def test_train_writes_a_loadable_artifact(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    result = runner.invoke(
        app, ["attribution", "train", "--out", str(out), "--synthetic", "200", "--no-petshop", "--json"],
        env={"BACKOUT_STATE_DIR": str(tmp_path)},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["synthetic_incidents"] == 200 and report["artifact_bytes"] == out.stat().st_size
    attributed = runner.invoke(app, ["attribute", "--input", str(SCENARIO), "--model", str(out), "--json"])
    assert attributed.exit_code == 0
    assert json.loads(attributed.stdout)["model"]["version"] == report["model_version"]


def test_train_rejects_a_missing_feedback_file(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["attribution", "train", "--out", str(tmp_path / "m"), "--feedback", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and "--feedback" in result.stderr


def test_bench_json_reports_every_set_and_ranker() -> None:
    if not default_root().exists():
        pytest.skip("PetShop dataset not present")
    result = runner.invoke(
        app, ["attribution", "bench", "--json", "--synthetic", "40", "--training-incidents", "0"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["training"] is None
    assert report["latency"]["changes"] == 50 and report["latency"]["series"] == 200
    for name in ("synthetic-heldout", "petshop-test"):
        rankers = report["sets"][name]["rankers"]
        assert set(rankers) == {"model", "recency", "graph+recency", "random"}
        for scores in rankers.values():
            assert 0 <= scores["hr_at_1"] <= scores["hr_at_3"] <= 1
            assert 0 <= scores["ece"] <= 1
    assert "CC-BY-4.0" in report["sets"]["petshop-test"]["source"]
    bins = report["sets"]["synthetic-heldout"]["rankers"]["model"]["reliability"]
    assert bins and all(b["low"] <= b["mean_probability"] <= b["high"] for b in bins)
    assert sum(b["candidates"] for b in bins) > report["sets"]["synthetic-heldout"]["incidents"]
