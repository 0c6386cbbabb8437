"""Per-candidate features (and the evidence behind them) for one incident."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from attribution.case import Case, ChangeData, SeriesData
from attribution.stats import (
    MIN_WINDOW_S,
    NO_SHIFT,
    Shift,
    change_point,
    noise_scale,
    sample_step,
    versus,
    window_shift,
)
from incidents.bundle import CHANGE_KINDS

RELATIONS: tuple[str, ...] = ("same", "callee", "caller", "unrelated", "unknown")
SYMPTOM_CLASSES: dict[str, str] = {
    "error_rate": "errors",
    "success_rate": "errors",
    "availability": "errors",
    "latency_ms": "latency",
    "latency_p99_ms": "latency",
    "latency": "latency",
    "ttft_ms": "latency",
    "eval_score": "quality",
    "retrieval_precision": "quality",
}
SYMPTOM_CLASS_NAMES: tuple[str, ...] = ("errors", "latency", "quality", "other")
ONSET_MIN_SCORE = 4.0
NARROW_WINDOW_S = 600.0
# Traffic volume is context, not health: a change does not go bad by being called more.
TRAFFIC_METRICS = frozenset({"requests", "throughput", "rps", "qps", "request_rate"})

FEATURE_NAMES: tuple[str, ...] = (
    "log_min_before_detection",
    "after_detection",
    "log_min_before_onset",
    "after_onset",
    "onset_known",
    "rollout_progress_at_onset",
    "rolling_at_detection",
    *(f"kind_{kind}" for kind in CHANGE_KINDS),
    *(f"relation_{relation}" for relation in RELATIONS),
    "callee_depth",
    "canary_available",
    "canary_z",
    "canary_badness",
    "own_available",
    "own_z",
    "own_badness",
    "own_log_points_before",
    "own_z_narrow",
    "own_cp_log_min_from_change",
    "own_cp_score",
    "callee_z",
    "path_caller_z",
    "own_z_at_onset",
    "callee_z_at_onset",
    "own_minus_callee_z",
    "symptom_available",
    "symptom_z",
    "symptom_badness",
    "symptom_log_points_before",
    "symptom_z_narrow",
    "log_n_changes",
    "log_recency_rank",
    "is_most_recent",
    "own_z_gap",
    "symptom_z_gap",
    "traffic_surge_z",
    "canary_z_gap",
    "same_service_nearby",
    *(f"symptom_{name}" for name in SYMPTOM_CLASS_NAMES),
)
FEATURE_INDEX: dict[str, int] = {name: index for index, name in enumerate(FEATURE_NAMES)}


@dataclass(slots=True)
class Evidence:
    """What the features of one change were computed from, for the reasons text."""

    change: ChangeData
    relation: str
    depth: int
    minutes_before_detection: float
    after_onset: bool
    onset_known: bool
    minutes_before_onset: float
    progress: float | None
    canary: tuple[str, Shift] | None = None
    own: tuple[str, Shift] | None = None
    symptom: tuple[str, Shift] | None = None
    callee: tuple[str, str, Shift] | None = None
    traffic: tuple[str, Shift] | None = None
    path_caller: tuple[str, str, Shift] | None = None
    own_at_onset: tuple[str, Shift] | None = None


def graph_relations(edges: list[tuple[str, str]], symptom_service: str | None) -> dict[str, tuple[str, int]]:
    """Relation of every known service to the symptom's service: same, callee at depth d, or caller."""
    if symptom_service is None:
        return {}
    callees: dict[str, list[str]] = {}
    callers: dict[str, list[str]] = {}
    for caller, callee in edges:
        callees.setdefault(caller, []).append(callee)
        callers.setdefault(callee, []).append(caller)
    relations: dict[str, tuple[str, int]] = {symptom_service: ("same", 0)}
    for adjacency, name in ((callees, "callee"), (callers, "caller")):
        queue: deque[tuple[str, int]] = deque([(symptom_service, 0)])
        while queue:
            node, depth = queue.popleft()
            for neighbour in adjacency.get(node, []):
                if neighbour not in relations:
                    relations[neighbour] = (name, depth + 1)
                    queue.append((neighbour, depth + 1))
    return relations


def _signed_log(value: float) -> float:
    return float(np.sign(value) * np.log1p(abs(value)))


class _SeriesIndex:
    """Per-series noise, windows and change points, computed once per incident."""

    def __init__(self, series: list[SeriesData]) -> None:
        self.series = series
        self._scales: dict[int, tuple[float, float]] = {}
        self._change_points: dict[int, tuple[float, float]] = {}
        self.by_service: dict[str, list[int]] = {}
        for index, item in enumerate(series):
            if item.name not in TRAFFIC_METRICS:
                self.by_service.setdefault(item.service, []).append(index)

    def scale_and_window(self, index: int) -> tuple[float, float]:
        if index not in self._scales:
            s = self.series[index]
            self._scales[index] = (noise_scale(s.values), max(MIN_WINDOW_S, 4 * sample_step(s.times)))
        return self._scales[index]

    def shift(self, index: int, split: float, narrow: bool = False) -> Shift:
        s = self.series[index]
        scale, window = self.scale_and_window(index)
        if narrow:  # a short window localises the step in time
            window = max(NARROW_WINDOW_S, 2 * sample_step(s.times))
        return window_shift(s.times, s.values, split, s.bad_sign, scale, window)

    def change_point(self, index: int) -> tuple[float, float]:
        if index not in self._change_points:
            s = self.series[index]
            scale = self.scale_and_window(index)[0]
            self._change_points[index] = change_point(s.times, s.values, s.bad_sign, scale)
        return self._change_points[index]

    def unversioned(self, service: str) -> list[int]:
        return [i for i in self.by_service.get(service, []) if self.series[i].version is None]

    def strongest(self, indices: list[int], split: float) -> tuple[int, Shift] | None:
        best: tuple[int, Shift] | None = None
        for index in indices:
            shift = self.shift(index, split)
            if shift.known and (best is None or shift.z > best[1].z):
                best = (index, shift)
        return best


def _symptom_indices(case: Case, index: _SeriesIndex) -> list[int]:
    if case.symptom_service is None:
        return []
    own = index.by_service.get(case.symptom_service, [])
    chosen = [i for i in own if index.series[i].version is None] or list(own)
    if case.symptom_metric:
        named = [i for i in chosen if index.series[i].name == case.symptom_metric]
        chosen = named or chosen
    return chosen


def _onset(case: Case, index: _SeriesIndex, symptom: list[int]) -> tuple[float, bool, float]:
    """Estimated symptom onset, whether it was found in the data, and a tolerance in seconds."""
    best_time, best_score, step = case.detected_at, 0.0, 60.0
    for i in symptom:
        when, score = index.change_point(i)
        if score > best_score and when <= case.detected_at + 600:
            best_time, best_score, step = when, score, sample_step(index.series[i].times)
    if best_score < ONSET_MIN_SCORE:
        return case.detected_at, False, 120.0
    return best_time, True, max(step, 60.0)


def _neighbours_best(index: _SeriesIndex, services: list[str], split: float) -> tuple[str, str, Shift] | None:
    """The neighbouring service whose metrics worsened most at `split`: (service, metric, shift)."""
    best: tuple[str, str, Shift] | None = None
    for service in services:
        found = index.strongest(index.unversioned(service), split)
        if found and (best is None or found[1].z > best[2].z):
            best = (service, index.series[found[0]].name, found[1])
    return best


def _traffic_surge(case: Case, onset: float) -> tuple[str, Shift] | None:
    """The strongest rise in request volume when the symptom began: load can explain a symptom."""
    best: tuple[str, Shift] | None = None
    for item in case.series:
        if item.name not in TRAFFIC_METRICS or item.version is not None:
            continue
        window = max(MIN_WINDOW_S, 4 * sample_step(item.times))
        shift = window_shift(item.times, item.values, onset, 1.0, noise_scale(item.values), window)
        if shift.known and (best is None or shift.z > best[1].z):
            best = (item.service, shift)
    return best


def _canary(case: Case, index: _SeriesIndex, change: ChangeData) -> tuple[str, Shift] | None:
    if not change.to_version:
        return None
    best: tuple[str, Shift] | None = None
    versions = index.by_service.get(change.service, [])
    for i in versions:
        new = index.series[i]
        if new.version != change.to_version:
            continue
        new_values = new.values[new.times >= change.started]
        for j in versions:
            old = index.series[j]
            if old.name != new.name or old.version in (None, change.to_version):
                continue
            if change.from_version and old.version != change.from_version:
                continue
            old_values = old.values[old.times >= change.started]
            if old_values.size == 0:
                # A full switch, not a canary: the old version stopped reporting when the change
                # landed, so its last values before the change are the comparison.
                old_values = old.values[old.times < change.started][-max(new_values.size, 5) :]
            shift = versus(new_values, old_values, new.bad_sign)
            if shift.known and (best is None or shift.z > best[1].z):
                best = (new.name, shift)
    return best


def extract(case: Case) -> tuple[np.ndarray, list[Evidence]]:
    """Feature matrix (one row per change, columns FEATURE_NAMES) and the evidence per row."""
    index = _SeriesIndex(case.series)
    relations = graph_relations(case.edges, case.symptom_service)
    symptom = _symptom_indices(case, index)
    onset, onset_known, tolerance = _onset(case, index, symptom)
    symptom_class = SYMPTOM_CLASSES.get(case.symptom_metric or "", "other")
    traffic = _traffic_surge(case, onset) if onset_known else None
    callees: dict[str, list[str]] = {}
    callers: dict[str, list[str]] = {}
    for caller, callee in case.edges:
        callees.setdefault(caller, []).append(callee)
        callers.setdefault(callee, []).append(caller)
    on_path = {service for service, (relation, _) in relations.items() if relation in ("same", "callee")}

    before_detection = sorted(
        (c for c in case.changes if c.started <= case.detected_at), key=lambda c: -c.started
    )
    recency_rank = {c.id: rank for rank, c in enumerate(before_detection)}
    rows = np.zeros((len(case.changes), len(FEATURE_NAMES)))
    evidence: list[Evidence] = []
    for row, change in zip(rows, case.changes, strict=True):
        if case.symptom_service is not None and change.service == case.symptom_service:
            relation, depth = "same", 0
        elif not relations or not case.edges:
            relation, depth = "unknown", 0
        else:
            relation, depth = relations.get(change.service, ("unrelated", 0))
        minutes_to_detection = (case.detected_at - change.started) / 60.0
        minutes_to_onset = (onset - change.started) / 60.0
        after_onset = change.started > onset + tolerance
        progress: float | None = None
        if change.completed is not None and change.completed > change.started:
            progress = float(
                np.clip((onset - change.started) / (change.completed - change.started), 0.0, 1.0)
            )
        canary = _canary(case, index, change)
        own_best = index.strongest(index.unversioned(change.service), change.started)
        symptom_best = index.strongest(symptom, change.started)
        callee_best = _neighbours_best(index, callees.get(change.service, []), change.started)
        upstream = [c for c in callers.get(change.service, []) if c in on_path and c != change.service]
        caller_best = _neighbours_best(index, upstream, change.started)
        # A delayed effect: the changed service itself worsening when the symptom began.
        own_at_onset = index.strongest(index.unversioned(change.service), onset) if onset_known else None
        callee_at_onset = (
            _neighbours_best(index, callees.get(change.service, []), onset) if onset_known else None
        )
        own_shift = own_best[1] if own_best else NO_SHIFT
        symptom_shift = symptom_best[1] if symptom_best else NO_SHIFT
        canary_shift = canary[1] if canary else NO_SHIFT
        callee_shift = callee_best[2] if callee_best else NO_SHIFT
        cp_minutes, cp_score = 1e4, 0.0
        if own_best is not None:
            cp_time, cp_score = index.change_point(own_best[0])
            if np.isfinite(cp_time):
                cp_minutes = abs(cp_time - change.started) / 60.0

        values = {
            "log_min_before_detection": _signed_log(minutes_to_detection),
            "after_detection": float(minutes_to_detection < 0),
            "log_min_before_onset": _signed_log(minutes_to_onset),
            "after_onset": float(after_onset),
            "onset_known": float(onset_known),
            "rollout_progress_at_onset": progress if progress is not None else float(change.started <= onset),
            "rolling_at_detection": float(change.completed is None or change.completed > case.detected_at),
            f"kind_{change.kind}": 1.0,
            f"relation_{relation}": 1.0,
            "callee_depth": float(depth if relation == "callee" else 0),
            "canary_available": float(canary is not None),
            "canary_z": _signed_log(canary_shift.z),
            "canary_badness": canary_shift.badness,
            "own_available": float(own_best is not None),
            "own_z": _signed_log(own_shift.z),
            "own_badness": own_shift.badness,
            "own_z_narrow": _signed_log(index.shift(own_best[0], change.started, narrow=True).z)
            if own_best
            else 0.0,
            "symptom_z_narrow": (
                _signed_log(index.shift(symptom_best[0], change.started, narrow=True).z)
                if symptom_best
                else 0.0
            ),
            "own_log_points_before": float(np.log1p(own_shift.n_before)),
            "symptom_log_points_before": float(np.log1p(symptom_shift.n_before)),
            "own_cp_log_min_from_change": float(np.log1p(min(cp_minutes, 1e4))),
            "own_cp_score": float(np.clip(cp_score, -50, 50)),
            "callee_z": _signed_log(callee_shift.z),
            "path_caller_z": _signed_log(caller_best[2].z) if caller_best else 0.0,
            "own_z_at_onset": _signed_log(own_at_onset[1].z) if own_at_onset else 0.0,
            "callee_z_at_onset": _signed_log(callee_at_onset[2].z) if callee_at_onset else 0.0,
            "own_minus_callee_z": _signed_log(own_shift.z) - _signed_log(callee_shift.z),
            "symptom_available": float(symptom_best is not None),
            "symptom_z": _signed_log(symptom_shift.z),
            "symptom_badness": symptom_shift.badness,
            "log_n_changes": float(np.log1p(len(case.changes))),
            "log_recency_rank": float(np.log1p(recency_rank.get(change.id, 50))),
            "is_most_recent": float(recency_rank.get(change.id) == 0),
            "same_service_nearby": float(
                sum(
                    1
                    for other in case.changes
                    if other.id != change.id
                    and other.service == change.service
                    and abs(other.started - change.started) <= 900
                )
            ),
            f"symptom_{symptom_class}": 1.0,
            "traffic_surge_z": _signed_log(traffic[1].z) if traffic else 0.0,
        }
        for name, value in values.items():
            row[FEATURE_INDEX[name]] = value
        evidence.append(
            Evidence(
                change=change,
                relation=relation,
                depth=depth,
                minutes_before_detection=minutes_to_detection,
                after_onset=after_onset,
                onset_known=onset_known,
                minutes_before_onset=minutes_to_onset,
                progress=progress,
                canary=canary,
                own=(index.series[own_best[0]].name, own_best[1]) if own_best else None,
                symptom=(index.series[symptom_best[0]].name, symptom_best[1]) if symptom_best else None,
                callee=callee_best,
                traffic=traffic,
                path_caller=caller_best,
                own_at_onset=(index.series[own_at_onset[0]].name, own_at_onset[1]) if own_at_onset else None,
            )
        )
    _relative_gaps(rows)
    np.nan_to_num(rows, copy=False, nan=0.0, posinf=50.0, neginf=-50.0)
    return rows, evidence


def _relative_gaps(rows: np.ndarray) -> None:
    """How much stronger each change's evidence is than the best of the other changes."""
    if rows.shape[0] == 0:
        return
    for source, target in (
        ("own_z", "own_z_gap"),
        ("symptom_z", "symptom_z_gap"),
        ("canary_z", "canary_z_gap"),
    ):
        column = rows[:, FEATURE_INDEX[source]]
        if rows.shape[0] == 1:
            rows[:, FEATURE_INDEX[target]] = column
            continue
        order = np.argsort(-column)
        best, second = column[order[0]], column[order[1]]
        others_best = np.where(np.arange(column.size) == order[0], second, best)
        rows[:, FEATURE_INDEX[target]] = column - others_best
