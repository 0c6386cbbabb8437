"""Look for the label in disguise: conventions that differ between culprits and the other changes.

Works on any labelled bundles (this generator's, PetShop's, recorded incidents). A
convention is anything about a change that is not evidence: whether `completed_at` is
recorded, whether it started before the first metric point, how its id, author,
description and versions are spelled, which series exist for it, where it sits in the
list. The kind of a change is a legitimate prior (a prompt edit explains a quality
drop better than a replica change), so conventions are compared among changes of the
same kind, and a model on conventions is judged by what it adds to a kind-only model.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel

from incidents.bundle import Change, IncidentBundle

Labelled = tuple[IncidentBundle, str | None]


class ChangeView(BaseModel):
    incident: int
    is_culprit: bool
    kind: str
    conventions: dict[str, str]
    start_rank: str
    in_window: bool
    started_s: float


class ValueGap(BaseModel):
    """One convention value: its share among culprits and among the rest of the same kinds."""

    convention: str
    value: str
    culprit_share: float
    rest_share: float
    culprits: int

    @property
    def gap(self) -> float:
        return abs(self.culprit_share - self.rest_share)


class LeakAudit(BaseModel):
    incidents: int
    changes: int
    chance_hit_rate: float
    kind_only_hit_rate: float
    with_conventions_hit_rate: float
    heuristics: dict[str, float]
    gaps: list[ValueGap]

    def worst_gap(self, min_culprits: int = 15) -> ValueGap | None:
        eligible = [gap for gap in self.gaps if gap.culprits >= min_culprits]
        return max(eligible, key=lambda gap: gap.gap, default=None)


def _shape(text: str | None) -> str:
    if text is None:
        return "none"
    return re.sub(r"[a-z]+", "a", re.sub(r"[0-9]+", "9", text.lower()))[:16]


def _series_index(bundle: IncidentBundle) -> dict[str, Counter[str]]:
    index: dict[str, Counter[str]] = defaultdict(Counter)
    for series in bundle.metrics:
        entry = index[series.service]
        entry["any"] += 1
        if series.version is None and series.pod is None and series.peer is None:
            entry["service"] += 1
        if series.pod is not None:
            entry["pod"] += 1
        if series.version is not None:
            entry[f"version={series.version}"] += 1
    return index


CONVENTIONS: dict[str, Callable[[Change, IncidentBundle, dict[str, Counter[str]]], str]] = {
    "completed_at recorded": lambda c, b, s: str(c.completed_at is not None),
    "id spelling": lambda c, b, s: _shape(c.id.replace(c.service, "S").replace(c.kind, "K")),
    "author": lambda c, b, s: c.author or "none",
    "description words": lambda c, b, s: str(min(len((c.description or "").split()), 5)),
    "to_version spelling": lambda c, b, s: _shape(c.to_version),
    "from_version spelling": lambda c, b, s: _shape(c.from_version),
    "rollback handle": lambda c, b, s: c.rollback.type if c.rollback else "none",
    "namespace": lambda c, b, s: c.namespace or "none",
    "series for to_version": lambda c, b, s: str(s[c.service][f"version={c.to_version}"] > 0),
    "series for from_version": lambda c, b, s: str(s[c.service][f"version={c.from_version}"] > 0),
    "service has series": lambda c, b, s: str(s[c.service]["any"] > 0),
    "service-level series": lambda c, b, s: str(s[c.service]["service"] > 0),
    "per-pod series": lambda c, b, s: str(s[c.service]["pod"] > 0),
    "list position": lambda c, b, s: _position(c, b),
}


def _position(change: Change, bundle: IncidentBundle) -> str:
    index = next(i for i, other in enumerate(bundle.changes) if other.id == change.id)
    if index == 0:
        return "first"
    return "last" if index == len(bundle.changes) - 1 else "middle"


def change_views(items: Sequence[Labelled]) -> list[ChangeView]:
    views: list[ChangeView] = []
    for number, (bundle, culprit) in enumerate(items):
        if culprit is None or not bundle.changes:
            continue
        series = _series_index(bundle)
        first_point = min(
            (p[0] for m in bundle.metrics for p in m.points), default=bundle.incident.detected_at
        )
        ordered = sorted(bundle.changes, key=lambda c: c.started_at)
        for change in bundle.changes:
            conventions = {name: rule(change, bundle, series) for name, rule in CONVENTIONS.items()}
            conventions["started before the first metric point"] = str(change.started_at < first_point)
            rank = "latest" if change is ordered[-1] else ("earliest" if change is ordered[0] else "middle")
            views.append(
                ChangeView(
                    incident=number,
                    is_culprit=change.id == culprit,
                    kind=change.kind,
                    conventions=conventions,
                    start_rank=rank,
                    in_window=change.started_at >= first_point,
                    started_s=(change.started_at - bundle.incident.detected_at).total_seconds(),
                )
            )
    return views


def _gaps(views: list[ChangeView]) -> list[ValueGap]:
    culprits = [view for view in views if view.is_culprit]
    rest_by_kind: dict[str, list[ChangeView]] = defaultdict(list)
    for view in views:
        if not view.is_culprit:
            rest_by_kind[view.kind].append(view)
    kind_weights = Counter(view.kind for view in culprits)
    gaps: list[ValueGap] = []
    for name in culprits[0].conventions if culprits else []:
        values = Counter(view.conventions[name] for view in views)
        for value, _ in values.most_common(12):
            culprit_share = float(np.mean([view.conventions[name] == value for view in culprits]))
            weighted, total = 0.0, 0.0
            for kind, weight in kind_weights.items():
                rest = rest_by_kind.get(kind, [])
                if rest:
                    weighted += weight * float(np.mean([view.conventions[name] == value for view in rest]))
                    total += weight
            culprit_count = sum(view.conventions[name] == value for view in culprits)
            gaps.append(
                ValueGap(
                    convention=name,
                    value=value,
                    culprit_share=culprit_share,
                    rest_share=weighted / total if total else 0.0,
                    culprits=int(culprit_count),
                )
            )
    return gaps


def _ranking_hit_rate(views: list[ChangeView], columns: list[str], folds: int = 5) -> float:
    """Top-1 hit rate of a logistic model on the given one-hot columns, cross-validated by incident."""
    from sklearn.linear_model import LogisticRegression

    vocabulary: dict[tuple[str, str], int] = {}
    for view in views:
        for column in columns:
            value = view.kind if column == "kind" else view.conventions[column]
            vocabulary.setdefault((column, value), len(vocabulary))
    matrix = np.zeros((len(views), len(vocabulary)))
    for row, view in enumerate(views):
        for column in columns:
            value = view.kind if column == "kind" else view.conventions[column]
            matrix[row, vocabulary[(column, value)]] = 1.0
    labels = np.array([view.is_culprit for view in views])
    incidents = np.array([view.incident for view in views])
    unique = np.unique(incidents)
    fold_of = {incident: position % folds for position, incident in enumerate(unique)}
    fold = np.array([fold_of[incident] for incident in incidents])
    hits: list[float] = []
    for held in range(folds):
        train, test = fold != held, fold == held
        if labels[train].all() or not labels[train].any():
            continue
        model = LogisticRegression(C=1.0, max_iter=2000)
        model.fit(matrix[train], labels[train])
        scores = model.decision_function(matrix[test])
        for incident in np.unique(incidents[test]):
            rows = np.flatnonzero(incidents[test] == incident)
            best = rows[scores[rows] == scores[rows].max()]
            hits.append(float(labels[test][best].mean()))
    return float(np.mean(hits)) if hits else 0.0


def _heuristics(views: list[ChangeView]) -> dict[str, float]:
    by_incident: dict[int, list[ChangeView]] = defaultdict(list)
    for view in views:
        by_incident[view.incident].append(view)
    rules: dict[str, Callable[[list[ChangeView]], list[ChangeView]]] = {
        "most recent": lambda vs: [v for v in vs if v.start_rank == "latest"],
        "earliest": lambda vs: [v for v in vs if v.start_rank == "earliest"],
        "earliest inside the metric window": lambda vs: (
            [min((v for v in vs if v.in_window), key=lambda v: v.started_s)]
            if any(v.in_window for v in vs)
            else vs
        ),
        "latest before the metric window": lambda vs: (
            [max((v for v in vs if not v.in_window), key=lambda v: v.started_s)]
            if any(not v.in_window for v in vs)
            else vs
        ),
    }
    out = {}
    for name, rule in rules.items():
        hits = []
        for group in by_incident.values():
            picked = rule(group) or group
            hits.append(float(np.mean([view.is_culprit for view in picked])))
        out[name] = float(np.mean(hits))
    return out


def audit(items: Sequence[Labelled]) -> LeakAudit:
    """Compare culprits with the other changes on every convention (incidents without a culprit are skipped)."""
    views = change_views(items)
    incidents = sorted({view.incident for view in views})
    sizes = Counter(view.incident for view in views)
    columns = list(views[0].conventions) if views else []
    return LeakAudit(
        incidents=len(incidents),
        changes=len(views),
        chance_hit_rate=float(np.mean([1.0 / sizes[incident] for incident in incidents]))
        if incidents
        else 0.0,
        kind_only_hit_rate=_ranking_hit_rate(views, ["kind"]) if views else 0.0,
        with_conventions_hit_rate=_ranking_hit_rate(views, ["kind", *columns]) if views else 0.0,
        heuristics=_heuristics(views) if views else {},
        gaps=_gaps(views),
    )
