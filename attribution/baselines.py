"""Named heuristic baselines, scored with probabilities so they can be compared on calibration too."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

from attribution.case import Case
from attribution.features import graph_relations

Ranker = Callable[[Case], np.ndarray]


def _decay(ranks: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Probabilities halving with each rank among eligible changes; ineligible ones get nothing."""
    weights = np.where(eligible, 0.5 ** ranks.astype(float), 0.0)
    total = weights.sum()
    return weights / total if total > 0 else weights


def recency(case: Case) -> np.ndarray:
    """Most recent change that started before detection first."""
    started = np.array([c.started for c in case.changes], dtype=float)
    eligible = started <= case.detected_at
    order = np.argsort(-np.where(eligible, started, -np.inf), kind="stable")
    ranks = np.empty(len(order), dtype=int)
    ranks[order] = np.arange(len(order))
    return _decay(ranks, eligible)


def graph_recency(case: Case) -> np.ndarray:
    """Recency, but changes on the symptom's service or its callees come before all others."""
    relations = graph_relations(case.edges, case.symptom_service)
    started = np.array([c.started for c in case.changes], dtype=float)
    eligible = started <= case.detected_at
    on_path = np.array(
        [relations.get(c.service, ("unrelated", 0))[0] in ("same", "callee") for c in case.changes],
        dtype=bool,
    )
    if not relations or not case.edges:
        on_path = np.ones(len(case.changes), dtype=bool)
    key = np.where(eligible, started, -np.inf) + np.where(on_path & eligible, 1e12, 0.0)
    order = np.argsort(-key, kind="stable")
    ranks = np.empty(len(order), dtype=int)
    ranks[order] = np.arange(len(order))
    return _decay(ranks, eligible)


def random_baseline(case: Case) -> np.ndarray:
    """A uniformly random order (seeded by the incident id), probability 1/n each."""
    count = len(case.changes)
    if count == 0:
        return np.zeros(0)
    rng = np.random.default_rng(zlib.crc32(case.incident_id.encode()))
    return (np.full(count, 1.0 / count) + rng.uniform(0, 1e-9, count)) / (1 + 1e-9)


BASELINES: dict[str, Ranker] = {"recency": recency, "graph+recency": graph_recency, "random": random_baseline}
