"""The model: learns from generated incidents, beats recency on held-out ones, calibrated-ish, loads anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attribution.baselines import graph_recency, random_baseline, recency
from attribution.bench import evaluate_set, score
from attribution.case import Case, ChangeData
from attribution.features import FEATURE_NAMES
from attribution.generator import ScenarioGenerator
from attribution.model import AttributionModel, ModelError, listwise_probabilities, load_model
from attribution.training import HELD_OUT_SEED, packaged_model_path


def test_small_model_beats_recency_on_held_out_incidents(small_model: AttributionModel) -> None:
    report = evaluate_set(small_model, ScenarioGenerator(seed=HELD_OUT_SEED).generate_many(150), "test")
    model, baseline = report.rankers["model"], report.rankers["recency"]
    assert model.hr_at_1 >= baseline.hr_at_1 + 0.2
    assert model.hr_at_3 >= 0.9
    assert model.ece < 0.1


def test_packaged_model_is_small_and_loads_from_any_directory(tmp_path: Path) -> None:
    assert packaged_model_path().stat().st_size < 1_000_000
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
    assert np.allclose(loaded.probabilities(features), small_model.probabilities(features))
    assert loaded.version == small_model.version


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such file"):
        load_model(tmp_path / "missing.json")
    junk = tmp_path / "junk.json"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(ModelError, match=r"junk\.json"):
        load_model(junk)


def test_listwise_probabilities_leave_room_for_no_culprit() -> None:
    low = listwise_probabilities(np.array([-6.0, -7.0, -8.0]), 1.0, 0.0)
    assert low.sum() < 0.01
    high = listwise_probabilities(np.array([8.0, -3.0]), 1.0, 0.0)
    assert high[0] > 0.99
    assert listwise_probabilities(np.zeros(0), 1.0, 0.0).size == 0


def test_score_counts_ranks_and_calibration_by_hand() -> None:
    probabilities = [np.array([0.7, 0.2]), np.array([0.1, 0.6, 0.2]), np.array([0.3])]
    result = score(probabilities, [0, 2, None])
    assert result.hr_at_1 == 0.5 and result.hr_at_3 == 1.0 and result.mrr == 0.75
    assert result.mean_max_probability_without_culprit == 0.3
    # bins: 0.7 (y=1), 0.2+0.2 (y=0+1), 0.1 (y=0), 0.6 (y=0), 0.3 (y=0): |0.7-1|+|0.4-1|+0.1+0.6+0.3 over 6
    assert result.ece == pytest.approx(round((0.3 + 0.6 + 0.1 + 0.6 + 0.3) / 6, 4))


def _baseline_case() -> Case:
    changes = [
        ChangeData("old-on-path", "retriever", "image", 1000.0),
        ChangeData("recent-unrelated", "billing", "image", 1900.0),
        ChangeData("after-detection", "rag-api", "config", 2100.0),
    ]
    edges = [("rag-api", "retriever"), ("admin", "billing")]
    return Case("b", 2000.0, "rag-api", "error_rate", edges, changes, [])


def test_baselines_rank_by_recency_and_graph() -> None:
    case = _baseline_case()
    assert np.argmax(recency(case)) == 1 and recency(case)[2] == 0.0
    assert np.argmax(graph_recency(case)) == 0
    uniform = random_baseline(case)
    assert np.allclose(uniform, 1 / 3, atol=1e-6)
    assert np.array_equal(uniform, random_baseline(case))  # seeded by the incident id


def test_compact_forest_matches_scikit_learn() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from attribution.forest import CompactForest

    rng = np.random.default_rng(4)
    features = rng.normal(size=(600, 6))
    labels = (features[:, 0] + features[:, 1] * features[:, 2] > 0.5).astype(int)
    classifier = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(features, labels)
    forest = CompactForest.from_classifier(classifier)
    probe = rng.normal(size=(50, 6))
    assert np.allclose(forest.decision(probe), classifier.decision_function(probe))
    assert np.allclose(CompactForest.from_json(forest.to_json()).decision(probe), forest.decision(probe))


def test_training_is_reproducible(tmp_path: Path) -> None:
    from attribution.training import TrainingConfig, train

    first, _ = train(TrainingConfig(seed=9, synthetic=150, petshop=False))
    second, _ = train(TrainingConfig(seed=9, synthetic=150, petshop=False))
    first.save(tmp_path / "a.json")
    second.save(tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
