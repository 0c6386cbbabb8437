"""The nuisance generator: valid spec-v1 bundles, deterministic, each family doing what it claims, no leaks.

The leak checks are statistical: across many incidents, no convention (completed_at,
placement against the metric window, id/author/description/version spelling, which
series exist, list position) separates culprits from the other changes of the same
kind, and a model on conventions ranks no better than one on kind alone. They are
shown to fail on bundles with a leak planted in them.
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections import deque
from datetime import timedelta
from pathlib import Path

import pytest

from attribution.nuisance import FAMILIES, LabelledBundle, describe_family, generate, generate_one
from attribution.nuisance.__main__ import main as nuisance_main
from attribution.nuisance.audit import LeakAudit, audit
from incidents.bundle import IncidentBundle, parse_bundle

PER_FAMILY = 10
SEED = 2024


@pytest.fixture(scope="module")
def sample() -> dict[str, list[LabelledBundle]]:
    return {family: generate(family, SEED, PER_FAMILY) for family in FAMILIES}


def _all(sample: dict[str, list[LabelledBundle]]) -> list[LabelledBundle]:
    return [item for items in sample.values() for item in items]


def _hops_below(bundle: IncidentBundle, top: str) -> dict[str, int]:
    edges = bundle.topology.edges if bundle.topology else []
    seen = {top: 0}
    queue = deque([top])
    while queue:
        node = queue.popleft()
        for caller, callee in edges:
            if caller == node and callee not in seen:
                seen[callee] = seen[node] + 1
                queue.append(callee)
    return seen


# --- API and validity ------------------------------------------------------------------


def test_every_family_is_described_and_unknown_ones_are_refused() -> None:
    assert len(FAMILIES) == len(set(FAMILIES)) >= 14
    for family in FAMILIES:
        assert describe_family(family)
    with pytest.raises(ValueError, match="unknown nuisance family"):
        generate("not-a-family", 1, 1)
    with pytest.raises(ValueError, match="n must be"):
        generate(FAMILIES[0], 1, -1)


def test_bundles_follow_the_spec_and_realistic_volumes(sample: dict[str, list[LabelledBundle]]) -> None:
    for item in _all(sample):
        wire = json.loads(json.dumps(item.to_json()))
        again = parse_bundle(wire)
        assert again == item.bundle, item.describe()
        bundle = item.bundle
        ids = [change.id for change in bundle.changes]
        assert len(ids) == len(set(ids))
        assert 3 <= len(ids) <= 12, item.describe()
        assert item.culprit is None or item.culprit in ids
        assert item.family in FAMILIES and item.notes and item.describe().startswith(item.family)
        detected = bundle.incident.detected_at
        assert bundle.incident.service and bundle.incident.symptom and bundle.incident.symptom.metric
        nodes = {name for edge in (bundle.topology.edges if bundle.topology else []) for name in edge}
        assert len(nodes) >= 4
        assert {change.service for change in bundle.changes} <= nodes
        assert {series.service for series in bundle.metrics} <= nodes
        for change in bundle.changes:
            assert change.started_at < detected
            assert change.completed_at is None or change.started_at <= change.completed_at <= detected
        times = sorted({point[0] for series in bundle.metrics for point in series.points})
        assert times, item.describe()
        window = times[-1] - times[0]
        assert timedelta(minutes=4) <= window <= timedelta(hours=2), item.describe()
        assert times[-1] <= detected
        steps = {(b - a).total_seconds() for a, b in itertools.pairwise(times)}
        assert min(steps) in (15.0, 30.0, 60.0)
        for series in bundle.metrics:
            stamps = [point[0] for point in series.points]
            assert stamps == sorted(stamps) and len(stamps) == len(set(stamps))


def test_generation_is_deterministic_per_family_and_seed() -> None:
    first = [item.to_json() for item in generate("mixed", 5, 3)]
    second = [item.to_json() for item in generate("mixed", 5, 3)]
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    prefix = [item.to_json() for item in generate("mixed", 5, 2)]
    assert prefix == first[:2]
    assert generate_one("mixed", 5, 2).to_json() == first[2]
    other_seed = [item.to_json() for item in generate("mixed", 6, 3)]
    assert other_seed != first
    assert generate("multi_hop", 5, 1)[0].to_json() != generate("flapping", 5, 1)[0].to_json()


def test_command_line_writes_scenario_folders(tmp_path: Path) -> None:
    assert nuisance_main(["ai_errors", "3", "2", "--out", str(tmp_path)]) == 0
    folders = sorted(tmp_path.iterdir())
    assert [folder.name for folder in folders] == ["ai_errors-3-000", "ai_errors-3-001"]
    expected = json.loads((folders[0] / "expected.json").read_text())
    bundle = parse_bundle(json.loads((folders[0] / "bundle.json").read_text()))
    assert expected["culprit"] in {change.id for change in bundle.changes}
    assert "ai_errors" in (folders[0] / "notes.txt").read_text()
    assert nuisance_main(["nope", "1", "1", "--out", str(tmp_path)]) == 2


# --- each family does what it claims --------------------------------------------------------


def test_no_culprit_families_have_none_and_the_others_have_one(
    sample: dict[str, list[LabelledBundle]],
) -> None:
    for family, items in sample.items():
        culprits = [item.culprit for item in items]
        if family.startswith("no_culprit"):
            assert culprits == [None] * len(items)
        elif family not in ("preexisting_degradation", "mixed"):
            assert None not in culprits, family


def test_concurrent_rollouts_start_within_minutes_and_all_still_roll(
    sample: dict[str, list[LabelledBundle]],
) -> None:
    for item in sample["concurrent_rollouts"]:
        changes = item.bundle.changes
        assert 3 <= len(changes) <= 10
        assert all(change.completed_at is None for change in changes), item.describe()
        starts = [change.started_at for change in changes]
        assert max(starts) - min(starts) <= timedelta(minutes=10)


def test_multi_hop_culprits_sit_one_to_three_hops_below_the_symptom(
    sample: dict[str, list[LabelledBundle]],
) -> None:
    for item in sample["multi_hop"]:
        bundle = item.bundle
        culprit = next(change for change in bundle.changes if change.id == item.culprit)
        assert bundle.incident.service is not None
        hops = _hops_below(bundle, bundle.incident.service).get(culprit.service)
        assert hops is not None and 1 <= hops <= 3, item.describe()


def _working_series(bundle: IncidentBundle, service: str, version: str | None) -> bool:
    """Does this version of the service report any work (a request, an error rate, a latency)?"""
    for series in bundle.metrics:
        if series.service != service or series.version != version or series.name in ("cpu", "memory"):
            continue
        if series.name == "requests":
            if any(value > 0 for _, value in series.points):
                return True
        elif series.points and series.name != "gpu_cache_usage":
            return True
    return False


def test_silent_culprits_never_report_work_and_harmless_rollouts_can_be_silent_too(
    sample: dict[str, list[LabelledBundle]],
) -> None:
    items = sample["silent_new_version"] + generate("silent_new_version", SEED + 1, 6)
    harmless_silent = 0
    for item in items:
        bundle = item.bundle
        culprit = next(change for change in bundle.changes if change.id == item.culprit)
        assert not _working_series(bundle, culprit.service, culprit.to_version), item.describe()
        assert _working_series(bundle, culprit.service, culprit.from_version) or not any(
            series.service == culprit.service for series in bundle.metrics
        )
        for change in bundle.changes:
            if change.id == item.culprit or change.kind not in ("image", "model"):
                continue
            reports_old = _working_series(bundle, change.service, change.from_version)
            if reports_old and not _working_series(bundle, change.service, change.to_version):
                harmless_silent += 1
    assert harmless_silent >= len(items) // 2


def test_invisible_symptoms_are_flat_or_missing_from_the_bundle(
    sample: dict[str, list[LabelledBundle]],
) -> None:
    visibility = []
    for item in sample["invisible_symptom"]:
        incident = item.bundle.incident
        assert incident.symptom is not None
        own = [
            series
            for series in item.bundle.metrics
            if series.service == incident.service
            and series.name == incident.symptom.metric
            and series.peer is None
        ]
        visibility.append(item.facts["visibility"])
        if item.facts["visibility"] == "absent":
            assert own == [], item.describe()
        else:
            assert item.facts["visibility"] == "flat"
            assert own, "a flat symptom is in the bundle, just without the degradation"
    assert set(visibility) == {"flat", "absent"}


def test_pod_telemetry_has_pods_and_sometimes_no_service_level_series(
    sample: dict[str, list[LabelledBundle]],
) -> None:
    without_service_level = 0
    for item in sample["pod_telemetry"]:
        series = item.bundle.metrics
        assert any(s.pod is not None for s in series), item.describe()
        pods = {s.pod for s in series if s.pod is not None}
        assert len(pods) >= 4
        if not any(s.pod is None and s.version is None and s.peer is None for s in series):
            without_service_level += 1
    assert without_service_level >= 1


def test_fresh_pods_of_harmless_rollouts_shift_resources_many_fold(
    sample: dict[str, list[LabelledBundle]],
) -> None:
    biggest = []
    for item in sample["resource_shift"]:
        bundle = item.bundle
        ratios = [1.0]
        for change in bundle.changes:
            if change.id == item.culprit:
                continue
            for name in ("memory", "cpu"):
                old = [
                    s
                    for s in bundle.metrics
                    if s.service == change.service and s.name == name and s.version == change.from_version
                ]
                new = [
                    s
                    for s in bundle.metrics
                    if s.service == change.service and s.name == name and s.version == change.to_version
                ]
                if old and new and old[0].points and new[0].points:
                    before = statistics.median(v for _, v in old[0].points)
                    after = statistics.median(v for _, v in new[0].points)
                    if before > 0 and after > 0:
                        ratios.append(max(after / before, before / after))
        biggest.append(max(ratios))
    assert max(biggest) >= 5.0
    assert sum(ratio >= 2.5 for ratio in biggest) >= 2


def test_ai_families_pair_symptoms_with_the_kinds_that_cause_them(
    sample: dict[str, list[LabelledBundle]],
) -> None:
    rules = {
        "ai_quality": (
            {"eval_score", "retrieval_precision", "hallucination_rate"},
            {"prompt", "model", "corpus"},
        ),
        "ai_latency": ({"ttft_ms", "latency_ms", "latency_p99_ms"}, {"image", "model"}),
        "ai_errors": ({"error_rate", "success_rate", "availability"}, {"config", "flag"}),
    }
    for family, (metrics, kinds) in rules.items():
        for item in sample[family]:
            incident = item.bundle.incident
            culprit = next(change for change in item.bundle.changes if change.id == item.culprit)
            assert incident.symptom is not None and incident.symptom.metric in metrics, item.describe()
            assert culprit.kind in kinds
            others = [c.kind for c in item.bundle.changes if c.id != item.culprit]
            assert culprit.kind in others, "the culprit's kind must not single it out"
    assert any(item.bundle.incident.source == "eval" for item in sample["ai_quality"])


def test_preexisting_degradation_has_a_later_change_that_is_not_the_cause(
    sample: dict[str, list[LabelledBundle]],
) -> None:
    saw_no_culprit = False
    for item in sample["preexisting_degradation"] + generate("preexisting_degradation", SEED + 1, 6):
        onset = item.bundle.incident.detected_at + timedelta(seconds=float(item.facts["onset_s"] or 0))
        late = [change for change in item.bundle.changes if change.started_at > onset]
        assert late and all(change.id != item.culprit for change in late), item.describe()
        saw_no_culprit |= item.culprit is None
    assert saw_no_culprit


def test_flapping_and_noisy_families_carry_their_nuisance(sample: dict[str, list[LabelledBundle]]) -> None:
    assert all(item.facts["flapping"] for item in sample["flapping"])

    def roughness(items: list[LabelledBundle]) -> float:
        values = []
        for item in items:
            for series in item.bundle.metrics:
                if series.name == "latency_ms" and series.pod is None and len(series.points) >= 12:
                    head = [v for _, v in series.points[: len(series.points) // 3]]
                    diffs = [abs(b - a) / max(a, 1e-9) for a, b in itertools.pairwise(head)]
                    values.append(statistics.median(diffs))
        return statistics.median(values)

    assert roughness(sample["noisy_seasonal"]) > 1.5 * roughness(sample["multi_hop"])


# --- leaks -------------------------------------------------------------------------------


def _assert_no_leak(report: LeakAudit) -> None:
    worst = report.worst_gap()
    assert worst is not None
    assert worst.gap <= 0.2, worst
    assert report.with_conventions_hit_rate <= report.kind_only_hit_rate + 0.08, report
    for name, hit_rate in report.heuristics.items():
        assert hit_rate <= report.chance_hit_rate + 0.1, (name, hit_rate, report.chance_hit_rate)


def test_no_convention_separates_culprits_from_the_other_changes(
    sample: dict[str, list[LabelledBundle]],
) -> None:
    items = [(item.bundle, item.culprit) for item in _all(sample)]
    report = audit(items)
    assert report.incidents >= 110
    _assert_no_leak(report)
    completed = {gap.value: gap for gap in report.gaps if gap.convention == "completed_at recorded"}
    assert abs(completed["True"].culprit_share - completed["True"].rest_share) <= 0.15


def _with_leak(item: LabelledBundle, how: str) -> tuple[IncidentBundle, str | None]:
    changes = []
    for change in item.bundle.changes:
        is_culprit = change.id == item.culprit
        if how == "completed_at":
            completed = change.started_at + timedelta(minutes=2) if is_culprit else None
            changes.append(change.model_copy(update={"completed_at": completed}))
        else:
            changes.append(
                change.model_copy(update={"author": "release-train" if is_culprit else change.author})
            )
    return item.bundle.model_copy(update={"changes": changes}), item.culprit


@pytest.mark.parametrize("how", ["completed_at", "author"])
def test_the_leak_audit_catches_a_planted_leak(sample: dict[str, list[LabelledBundle]], how: str) -> None:
    """PetShop's leak (culprits alone record completed_at), and an author only culprits have."""
    items = [_with_leak(item, how) for item in _all(sample) if item.culprit is not None]
    report = audit(items)
    worst = report.worst_gap()
    assert worst is not None and worst.gap >= 0.5
    assert report.with_conventions_hit_rate >= report.kind_only_hit_rate + 0.3
    with pytest.raises(AssertionError):
        _assert_no_leak(report)
