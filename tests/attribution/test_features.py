"""Evidence and robust statistics on hand-built incidents: each rule of issue 11, item 1, checked by itself."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from attribution.case import Case, ChangeData, SeriesData, case_from_bundle, case_to_bundle_dict
from attribution.evidence import FEATURE_INDEX, extract, graph_relations
from attribution.signals import family_of, family_weight, symptom_family
from attribution.stats import Effect, compare, onset, paired

EDGES = [("gateway", "rag-api"), ("rag-api", "retriever"), ("retriever", "vector-db"), ("admin", "billing")]
T0 = 1.8e9
STEP = 60.0
TIMES = T0 + STEP * np.arange(120)


def _series(
    service: str,
    name: str,
    jump_at: float | None,
    jump: float,
    version: str | None = None,
    pod: str | None = None,
    start: float = T0,
    level: float = 100.0,
    bad_sign: float = 1.0,
    noise: float = 0.02,
) -> SeriesData:
    times = TIMES[start <= TIMES]
    # A seed of its own per series, the same in every process (hash() of a str is salted per process).
    rng = np.random.default_rng(zlib.crc32(repr((service, name, version, pod)).encode()))
    values = level + rng.normal(0, noise * abs(level) + 1e-4, times.size)
    if jump_at is not None:
        values[times >= jump_at] += jump
    return SeriesData(name, service, version, bad_sign, times, values, pod=pod)


ONSET = T0 + 80 * STEP


def _case(series: list[SeriesData], changes: list[ChangeData], metric: str = "error_rate") -> Case:
    return Case("inc", T0 + 110 * STEP, "rag-api", metric, EDGES, changes, series)


def _row(case: Case, change_id: str) -> np.ndarray:
    rows, _, _ = extract(case)
    return rows[[c.id for c in case.changes].index(change_id)]


def test_signal_families_and_their_weights() -> None:
    assert family_of("error_rate") == family_of("success_rate") == family_of("availability") == "errors"
    assert (
        family_of("latency_ms") == family_of("ttft_ms") == family_of("request_duration_seconds") == "latency"
    )
    assert (
        family_of("eval_score")
        == family_of("retrieval_precision")
        == family_of("hallucination_rate")
        == "quality"
    )
    assert family_of("memory") == family_of("cpu") == family_of("gpu_cache_usage") == "resource"
    assert family_of("requests") == "traffic" and family_of("tokens") == "other"
    assert symptom_family(None) == "other"
    assert family_weight("errors", "errors") == 1.0
    assert family_weight("latency", "errors") == 0.5  # other health signals at reduced weight
    assert family_weight("resource", "errors") < 0.1  # resources only break ties...
    assert family_weight("resource", "resource") == 1.0  # ...unless the symptom is a resource symptom
    assert family_weight("traffic", "latency") == 0.0


def test_graph_relations_follow_callers_and_callees() -> None:
    relations = graph_relations(EDGES, "rag-api")
    assert relations["rag-api"] == ("same", 0)
    assert relations["retriever"] == ("callee", 1)
    assert relations["vector-db"] == ("callee", 2)
    assert relations["gateway"] == ("caller", 1)
    assert "billing" not in relations
    assert graph_relations(EDGES, None) == {}


def _strength(effect: Effect | None) -> float:
    assert effect is not None, "nothing to compare"
    return effect.strength


def test_compare_weighs_consistency_magnitude_and_size_and_does_not_saturate_on_a_flat_series() -> None:
    rng = np.random.default_rng(1)
    before = 0.01 + rng.normal(0, 0.001, 30)
    assert _strength(compare(before * 5, before, 1.0)) > 0.8  # consistent, large, many points
    assert abs(_strength(compare(before + rng.normal(0, 0.001, 30), before, 1.0))) < 0.3  # noise
    one_spike = before.copy()
    one_spike[5] = 1.0  # one spike after does not make a shift
    assert _strength(compare(one_spike, before, 1.0)) < 0.3
    flat = np.zeros(30)
    tiny = np.full(30, 1e-6)
    # A flat zero before and a tiny constant after: consistent, but not a huge shift against
    # the metric's typical level in the bundle.
    assert _strength(compare(tiny, flat, 1.0, reference_level=0.01)) < 0.1
    assert _strength(compare(before[:1] * 5, before[:1], 1.0)) < _strength(compare(before * 5, before, 1.0))


def test_paired_comparison_cancels_what_both_versions_share() -> None:
    times = TIMES[60:]
    ramp = np.linspace(100, 300, times.size)  # a flag ramping up for every pod
    rng = np.random.default_rng(3)
    old = (times[: times.size // 2], ramp[: times.size // 2] + rng.normal(0, 2, times.size // 2))
    new = (times, ramp + rng.normal(0, 2, times.size))
    # Pooled, the new version looks worse (it also reports later, when the ramp is higher)...
    assert _strength(compare(new[1], old[1], 1.0)) > 0.3
    # ...compared instant by instant it does not.
    assert abs(paired(new, old, 1.0, STEP).strength) < 0.3  # type: ignore[union-attr]
    worse = (times, ramp * 1.5 + rng.normal(0, 2, times.size))
    assert paired(worse, old, 1.0, STEP).strength > 0.8  # type: ignore[union-attr]


def test_onset_finds_the_main_step_not_an_earlier_bump_and_dates_a_flapping_symptom_from_its_start() -> None:
    values = np.full(120, 10.0) + np.random.default_rng(2).normal(0, 0.2, 120)
    values[50:53] += 2.0  # a small bump (another rollout's warm-up)
    values[80:] += 20.0
    when, size, _ = onset(TIMES, values, 1.0, 0.0)
    assert when == TIMES[80] and size > 10
    flapping = np.full(120, 10.0) + np.random.default_rng(4).normal(0, 0.2, 120)
    for start in range(70, 120, 10):
        flapping[start : start + 5] += 20.0
    assert onset(TIMES, flapping, 1.0, 0.0)[0] == TIMES[70]
    assert np.isnan(onset(TIMES, np.full(120, 10.0), 1.0, 0.0)[0])


def test_a_new_version_worse_than_its_old_version_is_evidence_even_without_a_service_level_series() -> None:
    culprit = ChangeData("culprit", "retriever", "image", ONSET - 300, None, "r1", "r2")
    other = ChangeData("other", "vector-db", "image", ONSET - 240, None, "v1", "v2")
    series = [
        _series("rag-api", "error_rate", ONSET, 0.05, level=0.01),
        *[_series("retriever", "error_rate", None, 0, "r1", f"old-{i}", level=0.01) for i in range(2)],
        *[
            _series("retriever", "error_rate", ONSET, 0.2, "r2", f"new-{i}", start=ONSET - 300, level=0.01)
            for i in range(2)
        ],
        _series("vector-db", "error_rate", None, 0, "v1", level=0.01),
        _series("vector-db", "error_rate", None, 0, "v2", start=ONSET - 240, level=0.01),
    ]
    case = _case(series, [culprit, other])
    rows, evidence, _ = extract(case)
    assert rows[0, FEATURE_INDEX["version_worse"]] > 0.8
    assert evidence[0].version is not None and "2 pods against 2" in evidence[0].version.detail
    assert rows[1, FEATURE_INDEX["version_worse"]] < 0.3  # looked and clean...
    assert rows[1, FEATURE_INDEX["version_measured"]] == 1.0  # ...which the model scores against


def test_a_fresh_pods_resource_shift_is_only_a_tie_breaker() -> None:
    innocent = ChangeData("innocent", "retriever", "image", ONSET - 300, None, "r1", "r2")
    series = [
        _series("rag-api", "error_rate", ONSET, 0.05, level=0.01),
        _series("retriever", "memory", None, 0, "r1", level=100.0),
        _series("retriever", "memory", None, 0, "r2", start=ONSET - 300, level=4000.0),  # 40x, on fresh pods
        _series("retriever", "error_rate", None, 0, "r1", level=0.01),
        _series("retriever", "error_rate", None, 0, "r2", start=ONSET - 300, level=0.01),
    ]
    rows, evidence, _ = extract(_case(series, [innocent]))
    assert evidence[0].resource is not None and evidence[0].resource.effect.ratio > 10
    assert rows[0, FEATURE_INDEX["version_worse"]] < 0.1


def test_a_shift_in_another_family_than_the_symptoms_is_kept_apart() -> None:
    # An error symptom: one change's new version is slower (another health family), the
    # other's service fails more (the symptom's own family).
    slower = ChangeData("slower", "retriever", "image", ONSET - 300, None, "r1", "r2")
    failing = ChangeData("failing", "vector-db", "config", ONSET - 240)
    series = [
        _series("rag-api", "error_rate", ONSET, 0.05, level=0.01),
        _series("retriever", "latency_ms", None, 0, "r1", level=100.0),
        _series("retriever", "latency_ms", ONSET - 300, 300.0, "r2", start=ONSET - 300, level=100.0),
        _series("vector-db", "error_rate", ONSET - 240, 0.2, level=0.01),
        _series("vector-db", "latency_ms", None, 0, level=100.0),
    ]
    rows, evidence, _ = extract(_case(series, [slower, failing]))
    assert evidence[0].version is not None and evidence[0].version.family == "latency"
    assert rows[0, FEATURE_INDEX["version_worse"]] == 0.0
    assert rows[0, FEATURE_INDEX["version_worse_other_family"]] > 0.3
    assert rows[1, FEATURE_INDEX["before_after_worse"]] > 0.8
    assert rows[1, FEATURE_INDEX["other_family_worse"]] == 0.0


def test_not_measured_is_neutral_and_looked_and_clean_is_not() -> None:
    measured = ChangeData("measured", "retriever", "config", ONSET - 600)
    unmeasured = ChangeData("unmeasured", "vector-db", "config", ONSET - 600)
    series = [
        _series("rag-api", "error_rate", ONSET, 0.05, level=0.01),
        _series("retriever", "error_rate", None, 0, level=0.01),
    ]
    rows, evidence, _ = extract(_case(series, [measured, unmeasured]))
    assert (
        rows[0, FEATURE_INDEX["before_after_measured"]] == 1.0
        and rows[0, FEATURE_INDEX["before_after_worse"]] < 0.2
    )
    assert (
        rows[1, FEATURE_INDEX["before_after_measured"]] == 0.0
        and rows[1, FEATURE_INDEX["version_measured"]] == 0.0
    )
    assert evidence[1].before_after is None


def test_a_silent_new_version_counts_for_the_change() -> None:
    silent = ChangeData("silent", "retriever", "image", ONSET - 300, None, "r1", "r2")
    series = [
        _series("rag-api", "error_rate", ONSET, 0.05, level=0.01),
        _series("retriever", "error_rate", None, 0, "r1", level=0.01),
        _series("retriever", "memory", None, 0, "r2", start=ONSET - 300),  # reports resources, no work
    ]
    rows, evidence, _ = extract(_case(series, [silent]))
    assert evidence[0].silent is not None and "never reported health metrics" in evidence[0].silent
    assert rows[0, FEATURE_INDEX["silent_new_version"]] == 1.0
    idle = [*series[:2], _series("retriever", "requests", None, 0, "r2", start=ONSET - 300, level=0.01)]
    idle.append(_series("retriever", "requests", None, 0, "r1", level=100.0))
    _, evidence, _ = extract(_case(idle, [silent]))
    assert evidence[0].silent is not None and "serves no requests" in evidence[0].silent


def test_a_callee_degrading_at_the_same_time_explains_away_before_after_evidence() -> None:
    caller_change = ChangeData("caller", "rag-api", "config", ONSET - 60)
    series = [
        _series("rag-api", "error_rate", ONSET, 0.05, level=0.01),
        _series("retriever", "error_rate", ONSET, 0.06, level=0.01),
    ]
    row = _row(_case(series, [caller_change]), "caller")
    alone = _row(_case(series[:1], [caller_change]), "caller")
    assert row[FEATURE_INDEX["before_after_worse"]] < 0.5 * alone[FEATURE_INDEX["before_after_worse"]]


def test_the_call_graph_walk_reaches_a_culprit_several_hops_down() -> None:
    deep = ChangeData("deep", "vector-db", "corpus", ONSET - 120)
    series = [
        _series("rag-api", "error_rate", ONSET, 0.05, level=0.01),
        _series("retriever", "error_rate", ONSET, 0.05, level=0.01),  # its caller on the path worsened
    ]
    rows, evidence, _ = extract(_case(series, [deep]))
    assert evidence[0].relation == "callee" and evidence[0].depth == 2
    assert rows[0, FEATURE_INDEX["callee_extra_depth"]] == 1.0
    assert rows[0, FEATURE_INDEX["upstream_worse"]] > 0.5


def test_a_change_after_the_onset_or_while_already_degrading_is_cleared() -> None:
    before = ChangeData("before", "retriever", "config", ONSET - 120)
    late = ChangeData("late", "retriever", "image", ONSET + 900, None, "r1", "r2")
    series = [_series("rag-api", "error_rate", ONSET, 0.05, level=0.01)]
    rows, _, incident = extract(_case(series, [before, late]))
    assert incident.onset_known and abs(incident.onset - ONSET) <= STEP
    assert rows[1, FEATURE_INDEX["after_onset"]] == 1.0 and rows[0, FEATURE_INDEX["after_onset"]] == 0.0
    # Fifteen minutes after a full step the whole degradation was already there (the
    # baseline ends at the onset; it once read 0.56 here, half its window degraded).
    assert rows[1, FEATURE_INDEX["pre_degraded"]] > 0.9
    assert rows[0, FEATURE_INDEX["pre_degraded"]] < 0.1


def test_a_change_started_just_after_the_first_bad_point_is_marked() -> None:
    culprit = ChangeData("culprit", "retriever", "config", ONSET - 90)
    just_after = ChangeData("just_after", "rag-api", "flag", ONSET + 20)
    series = [_series("rag-api", "error_rate", ONSET, 0.05, level=0.01)]
    rows, _, incident = extract(_case(series, [culprit, just_after]))
    assert incident.onset == ONSET
    # Inside the onset's tolerance, so not 'after onset'; but the first bad point preceded it.
    assert rows[1, FEATURE_INDEX["after_onset"]] == 0.0
    assert rows[1, FEATURE_INDEX["after_onset_point"]] == 1.0
    assert rows[0, FEATURE_INDEX["after_onset_point"]] == 0.0


def test_the_ranking_works_without_the_symptom_series() -> None:
    culprit = ChangeData("culprit", "retriever", "image", ONSET - 300, None, "r1", "r2")
    series = [
        _series("retriever", "error_rate", None, 0, "r1", level=0.01),
        _series("retriever", "error_rate", ONSET, 0.2, "r2", start=ONSET - 300, level=0.01),
    ]
    rows, _, incident = extract(_case(series, [culprit]))
    # The alert fired on data the bundle does not carry: the onset is read from the symptom's path.
    assert incident.onset_known and abs(incident.onset - ONSET) <= STEP
    assert rows[0, FEATURE_INDEX["version_worse"]] > 0.8
    assert rows[0, FEATURE_INDEX["after_onset"]] == 0.0
    flat = [
        _series("retriever", "error_rate", None, 0, "r1", level=0.01),
        _series("retriever", "error_rate", None, 0, "r2", start=ONSET - 300, level=0.01),
    ]
    _, _, incident = extract(_case(flat, [culprit]))
    assert not incident.onset_known  # nothing on the path degraded either


def test_a_traffic_surge_at_the_onset_explains_shifts_and_raises_no_culprit() -> None:
    innocent = ChangeData("innocent", "retriever", "config", ONSET - 120)
    series = [
        _series("rag-api", "latency_ms", ONSET, 200),
        _series("retriever", "latency_ms", ONSET, 200),
        _series("rag-api", "requests", ONSET, 300),  # 4x the requests
    ]
    with_load = extract(_case(series, [innocent], "latency_ms"))
    without = extract(_case(series[:2], [innocent], "latency_ms"))
    assert with_load[2].null_features[2] > 0.9 and without[2].null_features[2] == 0.0
    assert (
        with_load[0][0, FEATURE_INDEX["before_after_worse"]]
        < 0.2
        < without[0][0, FEATURE_INDEX["before_after_worse"]]
    )


def test_bundle_path_and_training_path_compute_the_same_features() -> None:
    """Training extracts features from generated cases; `attribute` from spec bundles: they must agree."""
    from attribution.generator import ScenarioGenerator
    from incidents.bundle import parse_bundle

    generator = ScenarioGenerator(seed=42)
    for number in range(15):
        case = generator.generate(number)
        direct, _, incident = extract(case)
        wire = parse_bundle(json.loads(json.dumps(case_to_bundle_dict(case))))
        via_bundle, _, via_incident = extract(case_from_bundle(wire))
        assert np.allclose(direct, via_bundle, rtol=1e-5, atol=1e-5), case.incident_id
        assert np.allclose(incident.null_features, via_incident.null_features, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["availability", "success_rate"])
def test_success_like_metrics_near_a_ceiling_read_as_failure_shares(name: str) -> None:
    change = ChangeData("c", "retriever", "config", ONSET - 60)
    level = 100.0 if name == "availability" else 1.0
    series = [
        _series("rag-api", "error_rate", ONSET, 0.05, level=0.01),
        _series("retriever", name, ONSET, -0.03 * level, level=level, bad_sign=-1.0, noise=0.002),
    ]
    series[1].values = np.minimum(series[1].values, level)
    _, evidence, _ = extract(_case(series, [change]))
    assert evidence[0].before_after is not None and evidence[0].before_after.effect.strength > 0.7
