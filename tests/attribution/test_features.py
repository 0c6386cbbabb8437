"""Features and robust statistics on hand-built incidents."""

from __future__ import annotations

import numpy as np
import pytest

from attribution.case import Case, ChangeData, SeriesData
from attribution.features import FEATURE_INDEX, extract, graph_relations
from attribution.stats import change_point, noise_scale, versus, window_shift

EDGES = [("gateway", "rag-api"), ("rag-api", "retriever"), ("retriever", "vector-db"), ("admin", "billing")]
T0 = 1.8e9


def _series(
    service: str, name: str, jump_at: float | None, jump: float, version: str | None = None
) -> SeriesData:
    times = T0 + 60.0 * np.arange(120)
    rng = np.random.default_rng(abs(hash((service, name, version))) % 2**32)
    values = 100 + rng.normal(0, 2, times.size)
    if jump_at is not None:
        values[times >= jump_at] += jump
    return SeriesData(name, service, version, 1.0, times, values)


def test_graph_relations_follow_callers_and_callees() -> None:
    relations = graph_relations(EDGES, "rag-api")
    assert relations["rag-api"] == ("same", 0)
    assert relations["retriever"] == ("callee", 1)
    assert relations["vector-db"] == ("callee", 2)
    assert relations["gateway"] == ("caller", 1)
    assert "billing" not in relations
    assert graph_relations(EDGES, None) == {}


def test_window_shift_is_oriented_and_robust_to_a_spike() -> None:
    times = np.arange(100, dtype=float) * 60
    values = np.full(100, 10.0)
    values[50:] = 20.0
    values[40] = 500.0  # one spike before the split must not hide the step
    up = window_shift(times, values, 50 * 60, 1.0, noise_scale(values), 1800)
    down = window_shift(times, values, 50 * 60, -1.0, noise_scale(values), 1800)
    assert up.z > 10 and up.ratio == pytest.approx(2.0, rel=0.01) and up.badness > 0
    assert down.z < -10 and down.badness < 0


def test_change_point_finds_the_step() -> None:
    times = np.arange(60, dtype=float) * 60
    values = np.r_[np.full(40, 1.0), np.full(20, 3.0)] + np.random.default_rng(1).normal(0, 0.05, 60)
    when, score = change_point(times, values, 1.0, noise_scale(values))
    assert when == 40 * 60 and score > 10
    _, reverse = change_point(times, values, -1.0, noise_scale(values))
    assert reverse < 0


def test_versus_compares_new_and_old_versions() -> None:
    old = np.full(30, 0.01) + np.random.default_rng(2).normal(0, 0.001, 30)
    assert versus(old * 5, old, 1.0).z > 5
    assert abs(versus(old, old, 1.0).z) < 1


def _case() -> Case:
    onset = T0 + 80 * 60
    culprit = ChangeData("chg-culprit", "retriever", "image", onset - 120, onset + 60, "r1", "r2")
    late = ChangeData("chg-late", "rag-api", "config", onset + 20 * 60)
    unrelated = ChangeData("chg-billing", "billing", "image", onset - 300)
    series = [
        _series("rag-api", "error_rate", onset, 40),
        _series("retriever", "error_rate", onset, 80),
        _series("retriever", "error_rate", onset, 300, version="r2"),
        _series("retriever", "error_rate", None, 0, version="r1"),
        _series("billing", "error_rate", None, 0),
    ]
    return Case("inc", T0 + 110 * 60, "rag-api", "error_rate", EDGES, [culprit, late, unrelated], series)


def test_features_capture_timing_graph_and_metric_evidence() -> None:
    rows, evidence = extract(_case())
    culprit, late, unrelated = rows
    assert culprit[FEATURE_INDEX["onset_known"]] == 1.0
    assert late[FEATURE_INDEX["after_onset"]] == 1.0 and culprit[FEATURE_INDEX["after_onset"]] == 0.0
    assert culprit[FEATURE_INDEX["relation_callee"]] == 1.0 and culprit[FEATURE_INDEX["callee_depth"]] == 1.0
    assert unrelated[FEATURE_INDEX["relation_unrelated"]] == 1.0
    assert late[FEATURE_INDEX["relation_same"]] == 1.0
    assert culprit[FEATURE_INDEX["canary_available"]] == 1.0 and culprit[FEATURE_INDEX["canary_z"]] > 2
    assert culprit[FEATURE_INDEX["own_z"]] > 2 and unrelated[FEATURE_INDEX["own_z"]] < 1
    assert culprit[FEATURE_INDEX["symptom_z"]] > 2
    assert culprit[FEATURE_INDEX["own_z_gap"]] > 0 > unrelated[FEATURE_INDEX["own_z_gap"]]
    assert late[FEATURE_INDEX["is_most_recent"]] == 1.0
    assert evidence[0].canary is not None and evidence[0].canary[0] == "error_rate"


def test_features_without_metrics_or_topology() -> None:
    case = _case()
    case.series, case.edges = [], []
    rows, _ = extract(case)
    assert rows[:, FEATURE_INDEX["relation_unknown"]].tolist() == [1.0, 0.0, 1.0]
    assert rows[1, FEATURE_INDEX["relation_same"]] == 1.0  # the symptom service is still known
    assert rows[:, FEATURE_INDEX["own_available"]].sum() == 0
    assert rows[:, FEATURE_INDEX["onset_known"]].sum() == 0


def test_bundle_path_and_training_path_compute_the_same_features() -> None:
    """Training extracts features from generated cases; `attribute` from spec bundles: they must agree."""
    import json

    from attribution.case import case_from_bundle, case_to_bundle_dict
    from attribution.generator import ScenarioGenerator
    from incidents.bundle import parse_bundle

    generator = ScenarioGenerator(seed=42)
    for number in range(25):
        case = generator.generate(number)
        direct, _ = extract(case)
        wire = parse_bundle(json.loads(json.dumps(case_to_bundle_dict(case))))
        via_bundle, _ = extract(case_from_bundle(wire))
        assert np.allclose(direct, via_bundle, rtol=1e-5, atol=1e-5), case.incident_id
