from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats
from typer.testing import CliRunner

from evals.stats import ComparisonSettings, compare, exchangeable_pass_test
from tests.evals.helpers import results_from_flags, write_lines, write_results
from worker.cli.evals import app

runner = CliRunner()
JSON_KEYS = {"regression", "metric", "baseline", "candidate", "delta", "ci", "p_value", "n", "test", "tags"}


def _baseline_flags(items: int = 200, passing: int = 180) -> np.ndarray:
    flags = np.zeros(items, dtype=bool)
    flags[:passing] = True
    return flags


def _compare_files(tmp_path: Path, base: np.ndarray, cand: np.ndarray, *extra: str) -> tuple[int, str]:
    base_file = write_results(tmp_path / "base.jsonl", results_from_flags(base))
    cand_file = write_results(tmp_path / "cand.jsonl", results_from_flags(cand))
    result = runner.invoke(app, ["compare", str(base_file), str(cand_file), *extra])
    return result.exit_code, result.output


def test_clear_drop_exits_1_with_documented_json(tmp_path: Path) -> None:
    base = _baseline_flags()
    cand = base.copy()
    cand[:20] = False  # 10-point drop
    code, output = _compare_files(tmp_path, base, cand, "--json")
    assert code == 1, output
    data = json.loads(output)
    assert set(data) == JSON_KEYS
    assert data["regression"] is True
    assert data["metric"] == "pass_rate"
    assert data["baseline"] == pytest.approx(0.9) and data["candidate"] == pytest.approx(0.8)
    assert data["delta"] == pytest.approx(-0.1)
    assert data["ci"][0] < -0.1 < data["ci"][1] < 0
    assert data["p_value"] == pytest.approx(0.5**20)
    assert data["n"] == 200 and data["test"] == "mcnemar-exact"


def test_noise_exits_0(tmp_path: Path) -> None:
    base = _baseline_flags()
    cand = base.copy()
    cand[:3] = False  # three items flake one way...
    cand[190:193] = True  # ...and three the other
    code, output = _compare_files(tmp_path, base, cand, "--json")
    assert code == 0, output
    assert json.loads(output)["regression"] is False


def test_improvement_exits_0(tmp_path: Path) -> None:
    base = _baseline_flags()
    cand = base.copy()
    cand[180:195] = True
    code, output = _compare_files(tmp_path, base, cand)
    assert code == 0, output
    assert "no regression" in output and "+0.075" in output


def test_small_significant_drop_below_min_effect_is_not_a_regression(tmp_path: Path) -> None:
    base = _baseline_flags(items=2000, passing=1800)
    cand = base.copy()
    cand[:30] = False  # 1.5 points, p ~ 1e-9
    code, output = _compare_files(tmp_path, base, cand, "--json")
    assert code == 0, output
    data = json.loads(output)
    assert data["p_value"] < 1e-6 and data["regression"] is False
    code, _ = _compare_files(tmp_path, base, cand, "--min-effect", "0.01")
    assert code == 1


def test_critical_tag_regression_is_reported(tmp_path: Path) -> None:
    tags = [["security"] if index < 40 else [] for index in range(200)]
    base = _baseline_flags()
    cand = base.copy()
    cand[:12] = False  # all in the security tag
    base_file = write_results(tmp_path / "b.jsonl", results_from_flags(base, tags))
    cand_file = write_results(tmp_path / "c.jsonl", results_from_flags(cand, tags))
    result = runner.invoke(
        app, ["compare", str(base_file), str(cand_file), "--json", "--critical-tag", "security"]
    )
    data = json.loads(result.output)
    assert data["tags"]["security"]["n"] == 40
    assert data["tags"]["security"]["regression"] is True
    assert data["tags"]["security"]["delta"] == pytest.approx(-0.3)
    assert result.exit_code == 1


def test_bad_input_exits_2_naming_the_problem(tmp_path: Path) -> None:
    good = write_results(tmp_path / "good.jsonl", results_from_flags(_baseline_flags(20, 18)))
    result = runner.invoke(app, ["compare", str(good), str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "missing.jsonl: no such file" in result.output

    broken = write_lines(
        tmp_path / "broken.jsonl",
        [
            {"id": "item-000", "score": 1, "passed": True},
            {"id": "item-001", "score": 1, "passed": True},
            "{oops",
        ],
    )
    result = runner.invoke(app, ["compare", str(good), str(broken)])
    assert result.exit_code == 2 and "broken.jsonl:3: invalid JSON" in result.output

    wrong_type = write_lines(tmp_path / "wrong.jsonl", [{"id": "item-000", "score": "high", "passed": True}])
    result = runner.invoke(app, ["compare", str(good), str(wrong_type)])
    assert result.exit_code == 2 and "wrong.jsonl:1: score" in result.output

    other_ids = write_lines(tmp_path / "other.jsonl", [{"id": "zzz", "score": 1, "passed": True}])
    result = runner.invoke(app, ["compare", str(good), str(other_ids)])
    assert result.exit_code == 2 and "share no item ids" in result.output

    result = runner.invoke(app, ["compare", str(good), str(good), "--metric", "accuracy"])
    assert result.exit_code == 2 and "--metric" in result.output


def test_score_metric_uses_wilcoxon(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    base_scores = rng.uniform(0.6, 1.0, 120)
    base = [{"id": f"i{k}", "score": float(s), "passed": bool(s > 0.7)} for k, s in enumerate(base_scores)]
    cand = [
        {"id": f"i{k}", "score": float(s) - 0.1, "passed": bool(s - 0.1 > 0.7)}
        for k, s in enumerate(base_scores)
    ]
    base_file = write_lines(tmp_path / "b.jsonl", list(base))
    cand_file = write_lines(tmp_path / "c.jsonl", list(cand))
    result = runner.invoke(app, ["compare", str(base_file), str(cand_file), "--metric", "score", "--json"])
    data = json.loads(result.output)
    assert result.exit_code == 1
    assert data["test"] == "wilcoxon-signed-rank" and data["delta"] == pytest.approx(-0.1)


def test_single_pair_test_is_mcnemar_exact() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        base = rng.integers(0, 2, 60)
        cand = np.where(rng.random(60) < 0.3, 1 - base, base)
        b = int(((base == 1) & (cand == 0)).sum())
        c = int(((base == 0) & (cand == 1)).sum())
        expected = scipy_stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue if b + c else 1.0
        assert exchangeable_pass_test(base[None, :], cand[None, :]) == pytest.approx(expected)


@pytest.mark.parametrize(("baseline_runs", "window"), [(1, 1), (3, 4)])
def test_each_look_is_valid_at_its_level(baseline_runs: int, window: int) -> None:
    """Under no change the single-look false-alarm rate stays at or below alpha."""
    from evals.sequential import SimulationModel, simulated_runs

    rng = np.random.default_rng(11)
    base, runs = simulated_runs(SimulationModel(flake_rate=0.05), 3000, baseline_runs, window, rng)
    p_values = np.array([exchangeable_pass_test(base[h], runs[h]) for h in range(base.shape[0])])
    assert (p_values < 0.05).mean() <= 0.05
    assert (p_values < 0.2).mean() > 0.05  # and it is not trivially conservative


def test_compare_pairs_by_id_ignoring_order_and_extras() -> None:
    base = results_from_flags([True] * 10)
    cand = list(reversed(results_from_flags([True] * 5 + [False] * 5)))
    cand.append(results_from_flags([True] * 11)[-1].model_copy(update={"id": "extra"}))
    result = compare([base], [cand], ComparisonSettings(min_effect=0.0))
    assert result.n == 10 and result.delta == pytest.approx(-0.5)
