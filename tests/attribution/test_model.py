"""The model: learns from generated incidents, beats the baselines, abstains, loads anywhere, retrains identically."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attribution.baselines import canary, graph_recency, random_baseline, recency
from attribution.bench import _Scored, evaluate_set, rollback_rule, score_ranker
from attribution.case import Case, ChangeData, SeriesData
from attribution.evidence import FEATURE_NAMES, NULL_FEATURE_NAMES
from attribution.generator import ScenarioGenerator
from attribution.model import SIGNS, AttributionModel, LabelledIncident, ModelError, fit, load_model
from attribution.training import HELD_OUT_SEED, packaged_model_path


def test_small_model_beats_the_baselines_on_held_out_generated_incidents(
    small_model: AttributionModel,
) -> None:
    cases = ScenarioGenerator(seed=HELD_OUT_SEED).generate_many(120)
    report = evaluate_set(small_model, cases, "test", bootstrap=20)
    model = report.rankers["model"]
    best_baseline = max(report.rankers[name].hr_at_1.value for name in ("recency", "graph+recency", "canary"))
    assert model.hr_at_1.value >= best_baseline + 0.15
    assert model.hr_at_3.value >= 0.8
    assert model.ece.value < 0.1


def test_signed_weights_keep_their_sign(small_model: AttributionModel) -> None:
    for name, sign in SIGNS.items():
        weight = float(small_model.weights[FEATURE_NAMES.index(name)])
        assert weight * sign >= 0, (name, weight)


def _incident(scores: list[float], culprit: int | None) -> LabelledIncident:
    features = np.zeros((len(scores), len(FEATURE_NAMES)))
    features[:, FEATURE_NAMES.index("version_worse")] = scores
    null = np.zeros(len(NULL_FEATURE_NAMES))
    null[0] = 1.0
    return LabelledIncident(features, null, culprit)


def test_the_fit_learns_evidence_and_the_no_culprit_share() -> None:
    rng = np.random.default_rng(0)
    incidents = []
    for _ in range(400):
        scores = rng.uniform(0, 0.3, 5)
        if rng.random() < 0.8:
            culprit = int(rng.integers(0, 5))
            scores[culprit] = rng.uniform(0.6, 1.0)
            incidents.append(_incident(scores.tolist(), culprit))
        else:
            incidents.append(_incident(scores.tolist(), None))
    model = fit(incidents, "t")
    assert model.weights[FEATURE_NAMES.index("version_worse")] > 3
    clear = _incident([0.9, 0.1, 0.1], 0)
    nothing = _incident([0.1, 0.1, 0.1], None)
    assert model.probabilities(clear.features, clear.null_features)[0] > 0.7
    assert model.probabilities(nothing.features, nothing.null_features).max() < 0.3  # abstains


def test_a_rejection_trains_against_that_change_only() -> None:
    incident = _incident([0.5, 0.5], None)
    incident.rejected_rows = np.array([0])
    model = fit([incident] * 50 + [_incident([0.9, 0.1], 0)] * 50, "t")
    p = model.probabilities(incident.features, incident.null_features)
    assert p.sum() <= 1.0


def test_packaged_model_is_small_and_loads_from_any_directory(tmp_path: Path) -> None:
    assert packaged_model_path().stat().st_size < 100_000
    code = "from attribution.model import load_model; print(load_model().version)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == load_model().version


def test_save_and_load_round_trip(small_model: AttributionModel, tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    small_model.save(path)
    loaded = load_model(path)
    features = np.random.default_rng(0).normal(size=(5, len(FEATURE_NAMES)))
    null = np.random.default_rng(1).normal(size=len(NULL_FEATURE_NAMES))
    assert np.allclose(loaded.probabilities(features, null), small_model.probabilities(features, null))
    assert loaded.version == small_model.version


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such file"):
        load_model(tmp_path / "missing.json")
    junk = tmp_path / "junk.json"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(ModelError, match=r"junk\.json"):
        load_model(junk)
    stale = tmp_path / "stale.json"
    stale.write_text('{"format": 3, "feature_names": []}')
    with pytest.raises(ModelError, match="retrain"):
        load_model(stale)


def test_scores_are_counted_by_hand() -> None:
    scored = [
        _Scored(np.array([0.7, 0.2]), 0),  # rank 1, acted on (0.7 >= 0.6, margin 0.5), correct
        _Scored(np.array([0.1, 0.6, 0.2]), 2),  # rank 2, top 0.6 margin 0.4: acted on, wrong
        _Scored(np.array([0.3]), None),  # no culprit, not acted on
    ]
    result, intervals = score_ranker(scored, ["a", "b", "c"], (0.6, 0.2), bootstrap=20)
    assert result.hr_at_1.value == 0.5 and result.hr_at_3.value == 1.0 and result.mrr.value == 0.75
    # bins: 0.7 (y=1), 0.2+0.2 (y=0+1), 0.1 (y=0), 0.6 (y=0), 0.3 (y=0): |0.7-1|+|0.4-1|+0.1+0.6+0.3 over 6
    assert result.ece.value == pytest.approx(round((0.3 + 0.6 + 0.1 + 0.6 + 0.3) / 6, 4))
    # multi-class Brier, the 'no culprit' option included (its probability: 1 - the sum):
    # (0.3^2 + 0.2^2 + 0.1^2) + (0.1^2 + 0.6^2 + 0.8^2 + 0.1^2) + (0.3^2 + 0.3^2), over 3 incidents
    brier = ((0.09 + 0.04 + 0.01) + (0.01 + 0.36 + 0.64 + 0.01) + (0.09 + 0.09)) / 3
    assert result.brier.value == pytest.approx(round(brier, 4))
    assert (
        intervals["coverage"].value == pytest.approx(round(2 / 3, 4)) and intervals["precision"].value == 0.5
    )
    assert result.hr_at_1.low <= result.hr_at_1.value <= result.hr_at_1.high


def test_the_rollback_threshold_is_read_from_the_shipped_runbook() -> None:
    threshold, margin, expression = rollback_rule()
    assert 0 < threshold < 1 and 0 <= margin < 1
    assert "attribution.top.probability" in expression


def _baseline_case() -> Case:
    changes = [
        ChangeData("old-on-path", "retriever", "image", 1000.0, None, "r1", "r2"),
        ChangeData("recent-unrelated", "billing", "image", 1900.0),
        ChangeData("after-detection", "rag-api", "config", 2100.0),
    ]
    edges = [("rag-api", "retriever"), ("admin", "billing")]
    times = np.arange(900.0, 2000.0, 10.0)
    series = [
        SeriesData("error_rate", "retriever", "r1", 1.0, times, np.full(times.size, 0.01)),
        SeriesData(
            "error_rate", "retriever", "r2", 1.0, times[times >= 1000], np.full((times >= 1000).sum(), 0.2)
        ),
    ]
    return Case("b", 2000.0, "rag-api", "error_rate", edges, changes, series)


def test_baselines_rank_by_recency_graph_and_versions() -> None:
    case = _baseline_case()
    assert np.argmax(recency(case)) == 1 and recency(case)[2] == 0.0
    assert np.argmax(graph_recency(case)) == 0
    assert np.argmax(canary(case)) == 0
    uniform = random_baseline(case)
    assert np.allclose(uniform, 1 / 3, atol=1e-6)
    assert np.array_equal(uniform, random_baseline(case))  # seeded by the incident id


def test_training_is_reproducible(tmp_path: Path) -> None:
    from attribution.training import TrainingConfig, train

    config = TrainingConfig(seed=9, synthetic=120, nuisance_per_family=2)
    first, _ = train(config)
    second, _ = train(config)
    first.save(tmp_path / "a.json")
    second.save(tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_the_trees_never_turn_signed_evidence_on_its_head() -> None:
    """More of a signed piece of evidence never moves a change's score the other way (trees included)."""
    model = load_model()
    assert model.trees, "the packaged model carries its boosted trees"
    rng = np.random.default_rng(5)
    rows = rng.uniform(0, 1, (200, len(FEATURE_NAMES)))
    for name, sign in SIGNS.items():
        column = FEATURE_NAMES.index(name)
        low, high = rows.copy(), rows.copy()
        low[:, column], high[:, column] = 0.1, 0.9
        if name.endswith("_better"):  # these columns are <= 0: 'more' is more negative
            low[:, column], high[:, column] = -0.9, -0.1
        null = np.ones(len(NULL_FEATURE_NAMES))
        difference = model.scores(high, null) - model.scores(low, null)
        assert np.all(sign * difference >= -1e-9), (name, float(difference.min()), float(difference.max()))


def test_a_tree_is_evaluated_node_by_node() -> None:
    from attribution.model import Tree

    # split on column 0 at 0.5; the right child splits on column 1 at 2.0
    tree = Tree(
        feature=np.array([0, -2, 1, -2, -2]),
        threshold=np.array([0.5, -2.0, 2.0, -2.0, -2.0]),
        left=np.array([1, -1, 3, -1, -1]),
        right=np.array([2, -1, 4, -1, -1]),
        value=np.array([0.0, -1.0, 0.0, 1.0, 3.0]),
    )
    columns = np.array([[0.2, 9.0], [0.5, 9.0], [0.7, 1.0], [0.7, 2.5]])
    assert tree.predict(columns).tolist() == [-1.0, -1.0, 1.0, 3.0]
    assert Tree.from_json(tree.to_json()).predict(columns).tolist() == [-1.0, -1.0, 1.0, 3.0]
