"""Named heuristic baselines, scored with probabilities so they can be compared on calibration too.

- recency: the most recent change that started before detection first;
- graph+recency: changes on the symptom's service or its callees first, recent first;
- canary: each change's new version against its old version over the same window
  (the largest oriented median shift of a health metric, in the old version's robust
  spreads), the classic per-version canary comparison; changes without per-version
  series rank after every compared one, recent first.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

from attribution.case import Case
from attribution.evidence import graph_relations
from attribution.signals import family_of
from attribution.stats import fast_median, robust_spread

Ranker = Callable[[Case], np.ndarray]
CANARY_MIN_Z = 3.0  # a canary comparison flags a version this many spreads worse


def _decay(ranks: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Probabilities halving with each rank among eligible changes; ineligible ones get nothing."""
    weights = np.where(eligible, 0.5 ** ranks.astype(float), 0.0)
    total = weights.sum()
    return weights / total if total > 0 else weights


def _ranked(key: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    order = np.argsort(-np.where(eligible, key, -np.inf), kind="stable")
    ranks = np.empty(len(order), dtype=int)
    ranks[order] = np.arange(len(order))
    return _decay(ranks, eligible)


def recency(case: Case) -> np.ndarray:
    """Most recent change that started before detection first."""
    started = np.array([c.started for c in case.changes], dtype=float)
    return _ranked(started, started <= case.detected_at)


def graph_recency(case: Case) -> np.ndarray:
    """Recency, but changes on the symptom's service or its callees come before all others."""
    relations = graph_relations(case.edges, case.symptom_service)
    started = np.array([c.started for c in case.changes], dtype=float)
    on_path = np.array(
        [relations.get(c.service, ("unrelated", 0))[0] in ("same", "callee") for c in case.changes],
        dtype=bool,
    )
    if not relations or not case.edges:
        on_path = np.ones(len(case.changes), dtype=bool)
    return _ranked(started + np.where(on_path, 1e12, 0.0), started <= case.detected_at)


def _canary_z(case: Case, index: int) -> float:
    change = case.changes[index]
    if not change.to_version:
        return 0.0
    best = 0.0
    for new in case.series:
        if new.service != change.service or new.version != change.to_version or new.peer is not None:
            continue
        if family_of(new.name) in ("resource", "traffic"):
            continue
        new_values = new.values[new.times >= change.started]
        if new_values.size == 0:
            continue
        for old in case.series:
            if (
                old.service != change.service
                or old.name != new.name
                or old.version in (None, change.to_version)
            ):
                continue
            old_values = old.values[(old.times >= change.started) & (old.times <= new.times[-1])]
            if old_values.size == 0:
                continue
            level = fast_median(old_values)
            spread = max(robust_spread(old_values), 0.05 * abs(level), 1e-9)
            best = max(best, new.bad_sign * (fast_median(new_values) - level) / spread)
    return best


def canary(case: Case) -> np.ndarray:
    """Per-version canary comparison: the change whose new version is worst against its old one first."""
    started = np.array([c.started for c in case.changes], dtype=float)
    z = np.array([_canary_z(case, i) for i in range(len(case.changes))])
    flagged = z >= CANARY_MIN_Z
    key = np.where(flagged, 1e12 + np.minimum(z, 1e6) * 1e3, 0.0) + started / 1e10
    return _ranked(key, started <= case.detected_at)


def random_baseline(case: Case) -> np.ndarray:
    """A uniformly random order (seeded by the incident id), probability 1/n each."""
    count = len(case.changes)
    if count == 0:
        return np.zeros(0)
    rng = np.random.default_rng(zlib.crc32(case.incident_id.encode()))
    return (np.full(count, 1.0 / count) + rng.uniform(0, 1e-9, count)) / (1 + 1e-9)


BASELINES: dict[str, Ranker] = {
    "recency": recency,
    "graph+recency": graph_recency,
    "canary": canary,
    "random": random_baseline,
}
