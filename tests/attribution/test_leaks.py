"""Leak checks: no convention may differ between culprits and the other changes.

A field filled one way for culprits and another for the rest (`completed_at`, a
description, a place in the metric window, a kind) is the label in disguise: a model,
or a baseline, would score on it and the benchmark would measure nothing. These tests
check the data sets backout is measured on: the vendored PetShop bundles (both splits)
and backout's own generator.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from scipy.stats import ks_2samp

from attribution.baselines import recency
from attribution.case import Case, ChangeData
from attribution.generator import ScenarioGenerator
from attribution.petshop import (
    BUCKET_S,
    CHANGE_WINDOW_BUCKETS,
    bucket_starts,
    default_root,
    injection_offset,
    issue_dirs,
    load_split,
)


def _split(cases: list[Case]) -> tuple[list[tuple[Case, ChangeData]], list[tuple[Case, ChangeData]]]:
    culprits: list[tuple[Case, ChangeData]] = []
    others: list[tuple[Case, ChangeData]] = []
    for case in cases:
        for change in case.changes:
            (culprits if change.id == case.culprit_id else others).append((case, change))
    return culprits, others


@pytest.fixture(scope="module", params=["validation", "test"])
def petshop(request: pytest.FixtureRequest) -> list[Case]:
    return load_split(request.param, variants=12)


def test_the_dataset_is_vendored_with_its_license() -> None:
    root = default_root()
    assert (root / "LICENSE").read_text().startswith("Attribution 4.0 International")
    assert (
        "CC-BY-4.0" in (root / "README.md").read_text()
        or "Attribution 4.0" in (root / "README.md").read_text()
    )
    assert len(issue_dirs("validation")) == 20 and len(issue_dirs("test")) == 48


def test_every_injection_lies_in_the_second_bucket_where_every_distractor_starts() -> None:
    for split in ("validation", "test"):
        for issue in issue_dirs(split):  # type: ignore[arg-type]
            offset = injection_offset(issue)
            assert CHANGE_WINDOW_BUCKETS[0] * BUCKET_S <= offset < CHANGE_WINDOW_BUCKETS[1] * BUCKET_S, issue


def test_petshop_start_times_do_not_tell_culprits_apart(petshop: list[Case]) -> None:
    culprits, others = _split(petshop)
    first = {case.incident_id: float(case.series[0].times.min()) for case in petshop}

    def offsets(pairs: list[tuple[Case, ChangeData]]) -> np.ndarray:
        return np.array([change.started - first[case.incident_id] for case, change in pairs])

    one_per_issue = list({str(case.extra["issue"]): (case, change) for case, change in culprits}.values())
    assert ks_2samp(offsets(one_per_issue), offsets(others)).pvalue > 0.01
    # Neither the most recent nor the earliest change is the culprit more often than chance.
    with_culprit = [case for case in petshop if case.culprit_id]
    chance = float(np.mean([1 / len(case.changes) for case in with_culprit]))
    most_recent = np.mean(
        [case.changes[int(np.argmax(recency(case)))].id == case.culprit_id for case in with_culprit]
    )
    earliest = np.mean(
        [min(case.changes, key=lambda c: c.started).id == case.culprit_id for case in with_culprit]
    )
    assert abs(most_recent - chance) < 0.1 and abs(earliest - chance) < 0.1, (most_recent, earliest, chance)


def test_petshop_change_fields_follow_one_convention(petshop: list[Case]) -> None:
    culprits, others = _split(petshop)
    for kind in ("config", "image"):
        share = [
            [change.completed is not None for _, change in pairs if change.kind == kind]
            for pairs in (culprits, others)
        ]
        if share[0] and share[1]:
            assert abs(np.mean(share[0]) - np.mean(share[1])) < 0.15, (kind, share)
    kinds = [Counter(change.kind for _, change in pairs) for pairs in (culprits, others)]
    for kind in set(kinds[0]) | set(kinds[1]):
        shares = [k[kind] / sum(k.values()) for k in kinds]
        assert abs(shares[0] - shares[1]) < 0.1, (kind, shares)
    for _, change in culprits + others:
        assert change.description is None
        assert re.fullmatch(r"chg-\d{3}", change.id)
        assert change.from_version and change.to_version and change.to_version.startswith(change.kind)
    for case in petshop:  # one change per service: a service's number of changes says nothing either
        services = [change.service for change in case.changes]
        assert len(services) == len(set(services))


def test_petshop_points_are_stamped_at_the_end_of_their_bucket() -> None:
    issue = issue_dirs("validation")[0]
    starts = bucket_starts(issue / "metrics.csv")
    [case] = load_split("validation", variants=1)[:1]
    assert all(series.times.min() >= starts[0] + BUCKET_S for series in case.series)
    assert case.detected_at == starts[-1] + BUCKET_S


def test_generated_change_fields_follow_one_convention() -> None:
    cases = ScenarioGenerator(seed=5).generate_many(300)
    culprits, others = _split(cases)
    for kind in ("image", "config", "model", "prompt", "flag"):
        share = [
            [change.completed is not None for _, change in pairs if change.kind == kind]
            for pairs in (culprits, others)
        ]
        if len(share[0]) >= 15 and len(share[1]) >= 15:
            assert abs(np.mean(share[0]) - np.mean(share[1])) < 0.2, (
                kind,
                np.mean(share[0]),
                np.mean(share[1]),
            )
    for _, change in culprits + others:
        assert change.description is None and re.fullmatch(r"chg-\d{4}", change.id)
    # The culprit is not placed first or last in the change list.
    positions = [
        [c.id for c in case.changes].index(case.culprit_id) / max(len(case.changes) - 1, 1)
        for case in cases
        if case.culprit_id and len(case.changes) > 2
    ]
    assert 0.4 < float(np.mean(positions)) < 0.6
