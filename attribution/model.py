"""The attribution model: a gradient-boosted scorer plus a listwise calibration with a 'no culprit' option.

Stage 1 (scikit-learn HistGradientBoostingClassifier) scores each candidate change
from its features. Stage 2 turns the scores of one incident into probabilities:

    P(change i is the culprit) = exp(a * s_i) / (exp(c) + sum_j exp(a * s_j))

with the temperature `a` and the 'no culprit' logit `c` fitted by maximum likelihood
on incidents the scorer never saw. Because exactly one change (or none) is the
culprit, these per-incident probabilities are the quantity that has to be
calibrated; the 'no culprit' term lets every change stay low when nothing explains
the symptom.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.ensemble import HistGradientBoostingClassifier

from attribution.case import Case, case_from_bundle
from attribution.features import FEATURE_NAMES, extract
from attribution.forest import CompactForest
from attribution.reasons import explain
from incidents.bundle import AttributionOutput, IncidentBundle, ModelInfo, RankedChange

MODEL_NAME = "backout-gbdt-listwise"
PACKAGED_MODEL = "model.json"
ARTIFACT_FORMAT = 3


class ModelError(RuntimeError):
    """The model artifact is missing, unreadable or was built for other features."""


@dataclass(slots=True)
class LabelledIncident:
    """Feature rows of one incident and which row (if any) is the culprit."""

    features: np.ndarray
    culprit_row: int | None
    weight: float = 1.0
    known_rows: np.ndarray | None = None  # rows whose label is known (feedback rejections); None = all


@dataclass
class AttributionModel:
    forest: CompactForest
    temperature: float
    null_logit: float
    version: str
    meta: dict[str, Any] = field(default_factory=dict)

    def scores(self, features: np.ndarray) -> np.ndarray:
        return self.forest.decision(features)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return listwise_probabilities(self.scores(features), self.temperature, self.null_logit)

    def probabilities_many(self, feature_groups: list[np.ndarray]) -> list[np.ndarray]:
        """Per-incident probabilities for many incidents with one batched scorer call."""
        if not feature_groups:
            return []
        stacked = np.vstack(feature_groups)
        groups = split_scores(self.scores(stacked), [f.shape[0] for f in feature_groups])
        return [listwise_probabilities(g, self.temperature, self.null_logit) for g in groups]

    def attribute_case(self, case: Case) -> AttributionOutput:
        features, evidence = extract(case)
        probabilities = self.probabilities(features)
        order = sorted(range(len(case.changes)), key=lambda i: (-probabilities[i], case.changes[i].id))
        ranking = [
            RankedChange(
                change_id=case.changes[i].id,
                probability=math.floor(float(probabilities[i]) * 1e4) / 1e4,  # never sums above 1
                reasons=explain(evidence[i], case.symptom_service),
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

    def save(self, path: Path) -> int:
        """Write the artifact as JSON text; returns its size in bytes."""
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": ARTIFACT_FORMAT,
            "name": MODEL_NAME,
            "version": self.version,
            "feature_names": list(FEATURE_NAMES),
            "temperature": self.temperature,
            "null_logit": self.null_logit,
            "meta": self.meta,
            "forest": self.forest.to_json(),
        }
        path.write_text(json.dumps(payload, separators=(",", ":")) + "\n", encoding="utf-8")
        return path.stat().st_size


def _decision(classifier: HistGradientBoostingClassifier, features: np.ndarray) -> np.ndarray:
    if features.shape[0] == 0:
        return np.zeros(0)
    return np.asarray(classifier.decision_function(features), dtype=float)


def listwise_probabilities(scores: np.ndarray, temperature: float, null_logit: float) -> np.ndarray:
    if scores.size == 0:
        return scores
    logits = temperature * scores
    top = max(float(logits.max()), null_logit)
    weights = np.exp(logits - top)
    return np.asarray(weights / (weights.sum() + np.exp(null_logit - top)))


def _fit_listwise(score_groups: list[np.ndarray], culprits: list[int | None]) -> tuple[float, float]:
    """Maximum-likelihood temperature and 'no culprit' logit over held-out incidents."""
    scores = np.concatenate(score_groups) if score_groups else np.zeros(0)
    group = np.repeat(np.arange(len(score_groups)), [g.size for g in score_groups])
    offsets = np.concatenate([[0], np.cumsum([g.size for g in score_groups])[:-1]]).astype(int)
    has_culprit = np.array([c is not None for c in culprits], dtype=bool)
    chosen_index = np.array([offsets[i] + (c or 0) for i, c in enumerate(culprits)], dtype=int)

    def loss(params: np.ndarray) -> float:
        temperature, null_logit = float(params[0]), float(params[1])
        logits = np.clip(temperature * scores, -60.0, 60.0)
        sums = np.bincount(group, weights=np.exp(logits), minlength=len(score_groups)) + np.exp(null_logit)
        chosen = np.where(has_culprit, logits[chosen_index] if scores.size else 0.0, null_logit)
        return float(np.mean(np.log(sums) - chosen))

    # The conditional-logit likelihood is convex in (temperature, null logit): quasi-Newton converges.
    result = minimize(loss, x0=np.array([1.0, 0.0]), method="L-BFGS-B")
    if not result.success:
        raise RuntimeError(f"listwise calibration did not converge: {result.message}")
    return float(result.x[0]), float(result.x[1])


def split_scores(model_scores: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    return np.split(model_scores, np.cumsum(sizes)[:-1]) if sizes else []


def _rows(incidents: list[LabelledIncident]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    features, labels, weights = [], [], []
    for incident in incidents:
        rows = np.arange(incident.features.shape[0])
        keep = rows if incident.known_rows is None else incident.known_rows
        label = np.zeros(rows.size)
        if incident.culprit_row is not None:
            label[incident.culprit_row] = 1.0
        features.append(incident.features[keep])
        labels.append(label[keep])
        weights.append(np.full(keep.size, incident.weight))
    return np.vstack(features), np.concatenate(labels), np.concatenate(weights)


def fit(
    incidents: list[LabelledIncident], seed: int, version: str, calibration_share: float = 0.2
) -> AttributionModel:
    """Fit the scorer on most incidents and the listwise calibration on the rest."""
    rng = np.random.default_rng(seed)
    complete = [i for i, incident in enumerate(incidents) if incident.known_rows is None]
    calibration = set(
        rng.choice(complete, size=int(len(complete) * calibration_share), replace=False).tolist()
    )
    train = [incident for i, incident in enumerate(incidents) if i not in calibration]
    features, labels, weights = _rows(train)
    classifier = HistGradientBoostingClassifier(
        max_iter=600,
        learning_rate=0.08,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )
    classifier.fit(features, labels, sample_weight=weights)
    held_out = [incidents[i] for i in sorted(calibration)]
    stacked = np.vstack([incident.features for incident in held_out])
    groups = split_scores(
        _decision(classifier, stacked), [incident.features.shape[0] for incident in held_out]
    )
    temperature, null_logit = _fit_listwise(groups, [incident.culprit_row for incident in held_out])
    forest = CompactForest.from_classifier(classifier)
    meta = {
        "seed": seed,
        "incidents": len(incidents),
        "training_rows": int(features.shape[0]),
        "calibration_incidents": len(groups),
    }
    return AttributionModel(forest, temperature, null_logit, version, meta)


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
        raise ModelError(f"attribution model {where}: cannot load ({exc})") from exc
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"attribution model {where}: cannot load (not JSON: {exc.msg})") from exc
    if not isinstance(payload, dict) or payload.get("format") != ARTIFACT_FORMAT:
        raise ModelError(f"attribution model {where}: unknown format (expected {ARTIFACT_FORMAT})")
    if payload.get("feature_names") != list(FEATURE_NAMES):
        raise ModelError(
            f"attribution model {where}: built for other features; run `backout attribution train`"
        )
    try:
        return AttributionModel(
            forest=CompactForest.from_json(payload["forest"]),
            temperature=float(payload["temperature"]),
            null_logit=float(payload["null_logit"]),
            version=str(payload["version"]),
            meta=dict(payload.get("meta", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"attribution model {where}: cannot load (bad field {exc})") from exc
