"""`backout attribute` error handling and human output; `backout attribution train|bench` on small inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from worker.cli import app

SCENARIO = (
    Path(__file__).resolve().parents[1]
    / "scenarios"
    / "attribution"
    / "001_recent_unrelated_deploy"
    / "bundle.json"
)
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
        app, ["attribution", "train", "--out", str(out), "--synthetic", "200", "--nuisance-per-family", "1", "--json"],
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


def test_bench_json_reports_intervals_baselines_abstention_and_rollback(tmp_path: Path) -> None:
    png = tmp_path / "reliability.png"
    result = runner.invoke(
        app,
        ["attribution", "bench", "--json", "--sets", "petshop-validation,generator", "--variants", "1",
         "--generated", "30", "--bootstrap", "20", "--no-latency", "--png", str(png)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["sets"]) == {"petshop-validation", "generator"}
    for name, item in report["sets"].items():
        assert set(item["rankers"]) == {"model", "recency", "graph+recency", "canary", "random"}
        for scores in item["rankers"].values():
            for metric in ("hr_at_1", "hr_at_3", "mrr", "ece", "brier"):
                interval = scores[metric]
                assert interval["low"] <= interval["value"] <= interval["high"], (name, metric)
        assert "attribution.top.probability" in item["auto_rollback"]["rule"]
        assert item["groups"] <= item["incidents"]
    assert report["sets"]["petshop-validation"]["groups"] == 20  # bootstrap resamples PetShop issues
    assert "CC-BY-4.0" in report["sets"]["petshop-validation"]["source"]
    assert report["sets"]["generator"]["no_culprit_top_probability"]["model"]["incidents"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_rejects_an_unknown_set() -> None:
    result = runner.invoke(app, ["attribution", "bench", "--sets", "nope", "--no-latency"])
    assert result.exit_code == 2 and "nope" in result.stderr


def test_attributing_a_bundle_loads_no_training_library() -> None:
    """The incident path reads the trees as arrays: scipy and scikit-learn load only to train."""
    import subprocess
    import sys

    probe = (
        "import sys; from typer.testing import CliRunner; import worker.cli; "
        f"result = CliRunner().invoke(worker.cli.app, ['attribute', '--input', {str(SCENARIO)!r}]); "
        "assert result.exit_code == 0, result.output; "
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert "numpy" in loaded and not loaded & {"scipy", "sklearn", "matplotlib"}, sorted(loaded)
