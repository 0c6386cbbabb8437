"""The attribution model: a conditional logit over the candidate changes and a 'no culprit' option.

    score(change i)   = w . x_i + eta * sum_t tree_t(x_i, z)
                                       (x_i: the evidence row of change i, evidence.FEATURE_NAMES)
    score(no culprit) = u . z          (z: the incident's row, evidence.NULL_FEATURE_NAMES)
    P(i) = exp(score_i) / (exp(score_null) + sum_j exp(score_j))

Exactly one change or none caused an incident, so the probabilities of one incident are
fitted together, by maximum likelihood over whole incidents: they are calibrated by
construction on data like the training data. The few weights are signed where the
evidence has a known direction (a worse new version never counts against a change,
'looked and clean' never for it), so what the model learns from generated incidents
cannot turn a piece of evidence on its head elsewhere. The artifact is the weights
themselves, named (`weights_table()`), so a reader can see what each piece of evidence is worth.

On top of the linear score, a few small regression trees (`boost`) learn how pieces of
evidence interact (a callee's credit for its caller's shift when its own series are
clean; timing when the onset came from the path): each is fitted to the gradient of
the same whole-incident likelihood, and each is monotone in every signed column, so a
tree cannot turn evidence on its head either. Trees are evaluated with numpy alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from attribution.case import Case, case_from_bundle
from attribution.evidence import FEATURE_NAMES, NULL_FEATURE_NAMES, extract
from attribution.reasons import explain
from incidents.bundle import AttributionOutput, IncidentBundle, ModelInfo, RankedChange

MODEL_NAME = "backout-evidence-logit"
PACKAGED_MODEL = "model.json"
ARTIFACT_FORMAT = 5
L2 = 1e-3
# Boosting (chosen on validation, docs/attribution.md): rounds, shrinkage, tree size.
BOOST_ROUNDS = 100
BOOST_RATE = 0.1
BOOST_LEAVES = 8
BOOST_MIN_LEAF = 40

# Sign constraints: +1 the weight is >= 0, -1 it is <= 0, 0 free.
SIGNS: dict[str, int] = {
    "after_detection": -1,
    "after_onset": -1,
    "after_onset_point": -1,
    "version_worse_other_family": 1,
    "other_family_worse": 1,
    "pre_degraded": -1,
    "version_worse": 1,
    "version_better": 1,  # the column is <= 0, so a positive weight counts a better version against
    "version_measured": -1,
    "silent_new_version": 1,
    "before_after_worse": 1,
    "before_after_better": 1,
    "before_after_measured": -1,
    "callers_worse": 1,
    "callers_better": 1,
    "callers_measured": -1,
    "upstream_worse": 1,
    "symptom_worse_after": 1,
    "symptom_better_after": 1,
    "symptom_flat_after": -1,
    "silent_and_callers_worse": 1,
    "own_pre_degraded": -1,
    "own_worse_at_onset": 1,
    "own_magnitude": 1,
    "log_min_after_onset": -1,
    "old_version_worse": -1,
    "symptom_step": 1,
}
NULL_SIGNS: dict[str, int] = {"traffic_surge": 1, "unexplained_origin": 1}


class ModelError(RuntimeError):
    """The model artifact is missing, unreadable or was built for other features."""


@dataclass(slots=True)
class LabelledIncident:
    """Feature rows of one incident, its 'no culprit' row, and which row (if any) is the culprit."""

    features: np.ndarray
    null_features: np.ndarray
    culprit_row: int | None
    weight: float = 1.0
    rejected_rows: np.ndarray | None = None  # feedback: these rows are not the culprit (nothing else known)


@dataclass(frozen=True)
class Tree:
    """One regression tree as arrays (a leaf has left == right == -1); columns: evidence, then the incident's row."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray

    def predict(self, columns: np.ndarray) -> np.ndarray:
        node = np.zeros(columns.shape[0], dtype=np.int64)
        rows = np.arange(columns.shape[0])
        while True:
            inner = self.left[node] >= 0
            if not inner.any():
                return np.asarray(self.value[node])
            go_left = columns[rows, np.where(inner, self.feature[node], 0)] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)

    def to_json(self) -> dict[str, list[float] | list[int]]:
        return {
            "feature": [int(v) for v in self.feature],
            "threshold": [float(f"{v:.10g}") for v in self.threshold],
            "left": [int(v) for v in self.left],
            "right": [int(v) for v in self.right],
            "value": [float(f"{v:.10g}") for v in self.value],
        }

    @classmethod
    def from_json(cls, payload: dict[str, list[Any]]) -> Tree:
        return cls(
            np.array(payload["feature"], dtype=np.int64),
            np.array(payload["threshold"], dtype=float),
            np.array(payload["left"], dtype=np.int64),
            np.array(payload["right"], dtype=np.int64),
            np.array(payload["value"], dtype=float),
        )


def _columns(features: np.ndarray, null_features: np.ndarray) -> np.ndarray:
    return np.column_stack([features, np.tile(null_features, (features.shape[0], 1))])


@dataclass
class AttributionModel:
    weights: np.ndarray
    null_weights: np.ndarray
    version: str
    meta: dict[str, Any] = field(default_factory=dict)
    trees: list[Tree] = field(default_factory=list)
    rate: float = BOOST_RATE

    def scores(self, features: np.ndarray, null_features: np.ndarray) -> np.ndarray:
        """The changes' scores (the 'no culprit' score is null_features . null_weights)."""
        scores = features @ self.weights
        if self.trees and features.shape[0]:
            columns = _columns(features, null_features)
            scores = scores + self.rate * sum(tree.predict(columns) for tree in self.trees)
        return np.asarray(scores)

    def probabilities(self, features: np.ndarray, null_features: np.ndarray) -> np.ndarray:
        if features.shape[0] == 0:
            return np.zeros(0)
        scores = self.scores(features, null_features)
        null = float(null_features @ self.null_weights)
        top = max(float(scores.max()), null)
        weights = np.exp(scores - top)
        return np.asarray(weights / (weights.sum() + math.exp(null - top)))

    def probabilities_many(self, incidents: list[LabelledIncident]) -> list[np.ndarray]:
        return [self.probabilities(i.features, i.null_features) for i in incidents]

    def attribute_case(self, case: Case) -> AttributionOutput:
        features, evidence, incident = extract(case)
        probabilities = self.probabilities(features, incident.null_features)
        order = sorted(range(len(case.changes)), key=lambda i: (-probabilities[i], case.changes[i].id))
        ranking = [
            RankedChange(
                change_id=case.changes[i].id,
                probability=math.floor(float(probabilities[i]) * 1e4) / 1e4,  # never sums above 1
                reasons=explain(evidence[i], incident, case.symptom_service),
            )
            for i in order
        ]
        return AttributionOutput(
            incident_id=case.incident_id,
            ranking=ranking,
            model=ModelInfo(name=MODEL_NAME, version=self.version),
        )

    def attribute(self, bundle: IncidentBundle) -> AttributionOutput:
        return self.attribute_case(case_from_bundle(bundle))

    def weights_table(self) -> dict[str, dict[str, float]]:
        return {
            "change": {name: round(float(w), 4) for name, w in zip(FEATURE_NAMES, self.weights, strict=True)},
            "no_culprit": {
                name: round(float(w), 4)
                for name, w in zip(NULL_FEATURE_NAMES, self.null_weights, strict=True)
            },
        }

    def save(self, path: Path) -> int:
        """Write the artifact as JSON text; returns its size in bytes."""
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": ARTIFACT_FORMAT,
            "name": MODEL_NAME,
            "version": self.version,
            "feature_names": list(FEATURE_NAMES),
            "null_feature_names": list(NULL_FEATURE_NAMES),
            "weights": [float(f"{w:.10g}") for w in self.weights],
            "null_weights": [float(f"{w:.10g}") for w in self.null_weights],
            "meta": self.meta,
            "boost_rate": self.rate,
            "trees": [],
        }
        text = json.dumps(payload, indent=1)
        # One line per tree keeps the file small and the weights above it readable.
        trees = ",\n  ".join(json.dumps(tree.to_json(), separators=(",", ":")) for tree in self.trees)
        text = text.replace('"trees": []', f'"trees": [\n  {trees}\n ]' if trees else '"trees": []')
        path.write_text(text + "\n", encoding="utf-8")
        return path.stat().st_size


def _bounds(names: tuple[str, ...], signs: dict[str, int]) -> list[tuple[float | None, float | None]]:
    out: list[tuple[float | None, float | None]] = []
    for name in names:
        sign = signs.get(name, 0)
        out.append((0.0, None) if sign > 0 else (None, 0.0) if sign < 0 else (None, None))
    return out


def fit(
    incidents: list[LabelledIncident],
    version: str,
    l2: float = L2,
    fixed: dict[str, float] | None = None,
) -> AttributionModel:
    """Maximum-likelihood weights over whole incidents (a convex problem: the optimum is unique).

    `fixed` pins named change weights (a choice made on validation, not learned).
    """
    incidents = [i for i in incidents if i.features.shape[0] > 0]  # nothing to rank, nothing to learn
    if not incidents:
        raise ValueError("no incidents to fit")
    n_features, n_null = len(FEATURE_NAMES), len(NULL_FEATURE_NAMES)
    rows = np.vstack([i.features for i in incidents])
    nulls = np.vstack([i.null_features for i in incidents])
    sizes = np.array([i.features.shape[0] for i in incidents])
    group = np.repeat(np.arange(len(incidents)), sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    weights = np.array([i.weight for i in incidents], dtype=float)
    weights = weights / weights.sum()
    # What the label says, as the set of alternatives it allows: the culprit's row; 'no culprit';
    # or, for an operator's rejection, every alternative but the rejected rows.
    chosen_rows = np.zeros(rows.shape[0], dtype=bool)
    chosen_null = np.zeros(len(incidents), dtype=bool)
    for k, incident in enumerate(incidents):
        if incident.rejected_rows is not None:
            mask = np.ones(sizes[k], dtype=bool)
            mask[incident.rejected_rows] = False
            chosen_rows[offsets[k] : offsets[k] + sizes[k]] = mask
            chosen_null[k] = True
        elif incident.culprit_row is not None:
            chosen_rows[offsets[k] + incident.culprit_row] = True
        else:
            chosen_null[k] = True
    bounds = _bounds(FEATURE_NAMES, SIGNS) + _bounds(NULL_FEATURE_NAMES, NULL_SIGNS)
    for name, value in (fixed or {}).items():
        bounds[FEATURE_NAMES.index(name)] = (value, value)

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, u = params[:n_features], params[n_features:]
        scores = rows @ w
        null = nulls @ u
        top = np.maximum(np.maximum.reduceat(scores, offsets), null)
        exp_rows = np.exp(scores - top[group])
        exp_null = np.exp(null - top)
        total = np.bincount(group, weights=exp_rows, minlength=len(incidents)) + exp_null
        chosen_rows_exp = np.where(chosen_rows, exp_rows, 0.0)
        chosen_total = np.bincount(group, weights=chosen_rows_exp, minlength=len(incidents)) + np.where(
            chosen_null, exp_null, 0.0
        )
        value = float(weights @ (np.log(total) - np.log(chosen_total))) + l2 * float(params @ params)
        # Gradient: features expected under the model minus those expected under the label.
        row_weight = (exp_rows / total[group] - chosen_rows_exp / chosen_total[group]) * weights[group]
        null_weight = (exp_null / total - np.where(chosen_null, exp_null, 0.0) / chosen_total) * weights
        gradient = np.concatenate([rows.T @ row_weight, nulls.T @ null_weight]) + 2 * l2 * params
        return value, gradient

    start = np.zeros(n_features + n_null)
    for index, (low, high) in enumerate(bounds):
        if low is not None and low == high:
            start[index] = low
    from scipy.optimize import minimize  # training only: `backout attribute` stays light

    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 2000})
    if not result.success:
        raise RuntimeError(f"attribution model did not converge: {result.message}")
    params = result.x
    meta = {"incidents": len(incidents), "rows": int(rows.shape[0]), "loss": round(float(result.fun), 6)}
    return AttributionModel(params[:n_features].copy(), params[n_features:].copy(), version, meta)


def boost(
    model: AttributionModel,
    incidents: list[LabelledIncident],
    rounds: int = BOOST_ROUNDS,
    rate: float = BOOST_RATE,
    leaves: int = BOOST_LEAVES,
    min_leaf: int = BOOST_MIN_LEAF,
) -> AttributionModel:
    """Add `rounds` small trees to a fitted model, each a Newton step on the whole-incident likelihood.

    Each tree is fitted to the per-change gradient over its curvature and is monotone in
    every signed evidence column (scikit-learn's CART, deterministic: every column is
    tried at every split). Only labelled incidents (a culprit or none) are used.
    """
    from sklearn.tree import DecisionTreeRegressor  # training only

    incidents = [i for i in incidents if i.features.shape[0] > 0 and i.rejected_rows is None]
    columns = np.vstack([_columns(i.features, i.null_features) for i in incidents])
    sizes = np.array([i.features.shape[0] for i in incidents])
    group = np.repeat(np.arange(len(incidents)), sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    label = np.zeros(columns.shape[0])
    for k, incident in enumerate(incidents):
        if incident.culprit_row is not None:
            label[offsets[k] + incident.culprit_row] = 1.0
    weight = np.array([i.weight for i in incidents], dtype=float)
    weight = (weight / weight.mean())[group]
    null = np.array([float(i.null_features @ model.null_weights) for i in incidents])
    scores = np.concatenate([i.features for i in incidents]) @ model.weights
    monotone = [SIGNS.get(name, 0) for name in FEATURE_NAMES] + [0] * len(NULL_FEATURE_NAMES)
    trees: list[Tree] = []
    for _ in range(rounds):
        top = np.maximum(np.maximum.reduceat(scores, offsets), null)
        exp_rows = np.exp(scores - top[group])
        total = np.bincount(group, weights=exp_rows, minlength=len(incidents)) + np.exp(null - top)
        p = exp_rows / total[group]
        gradient = (p - label) * weight
        curvature = np.maximum(p * (1.0 - p), 1e-6) * weight
        cart = DecisionTreeRegressor(
            max_leaf_nodes=leaves, min_samples_leaf=min_leaf, monotonic_cst=monotone, random_state=0
        )
        cart.fit(columns, -gradient / curvature, sample_weight=curvature)
        structure = cart.tree_
        tree = Tree(
            structure.feature.astype(np.int64),
            structure.threshold.astype(float),
            structure.children_left.astype(np.int64),
            structure.children_right.astype(np.int64),
            structure.value[:, 0, 0].astype(float),
        )
        scores = scores + rate * tree.predict(columns)
        trees.append(tree)
    model.trees, model.rate = trees, rate
    model.meta.update({"trees": rounds, "boost_rate": rate, "tree_leaves": leaves, "tree_min_leaf": min_leaf})
    return model


def load_model(path: Path | None = None) -> AttributionModel:
    """Load an artifact from `path`, or the one packaged with backout (independent of the cwd)."""
    where = str(path) if path is not None else f"attribution/data/{PACKAGED_MODEL} (packaged)"
    try:
        if path is None:
            text = resources.files("attribution").joinpath("data", PACKAGED_MODEL).read_text(encoding="utf-8")
        else:
            text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ModelError(f"attribution model {where}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"attribution model {where}: cannot read ({exc})") from exc
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"attribution model {where}: cannot load (not JSON: {exc.msg})") from exc
    if not isinstance(payload, dict):
        raise ModelError(f"attribution model {where}: cannot load (not a JSON object)")
    if payload.get("format") != ARTIFACT_FORMAT:
        raise ModelError(
            f"attribution model {where}: cannot load (format {payload.get('format')!r}, expected {ARTIFACT_FORMAT};"
            " retrain with `backout attribution train`)"
        )
    if payload.get("feature_names") != list(FEATURE_NAMES) or payload.get("null_feature_names") != list(
        NULL_FEATURE_NAMES
    ):
        raise ModelError(
            f"attribution model {where}: cannot load (built for other features; retrain with `backout attribution train`)"
        )
    try:
        return AttributionModel(
            weights=np.array(payload["weights"], dtype=float),
            null_weights=np.array(payload["null_weights"], dtype=float),
            version=str(payload["version"]),
            meta=dict(payload.get("meta", {})),
            trees=[Tree.from_json(tree) for tree in payload.get("trees", [])],
            rate=float(payload.get("boost_rate", BOOST_RATE)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"attribution model {where}: cannot load (bad field {exc})") from exc
