"""A fitted HistGradientBoostingClassifier as plain arrays: JSON-friendly and fast on a few rows.

scikit-learn's own predictor walks each tree separately (250 calls per bundle); here
all (tree, row) pairs descend together, one level per step, in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier


@dataclass(slots=True)
class CompactForest:
    baseline: float
    roots: np.ndarray  # index of each tree's root node in the arrays below
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    is_leaf: np.ndarray
    max_depth: int

    @classmethod
    def from_classifier(cls, classifier: HistGradientBoostingClassifier) -> CompactForest:
        columns: dict[str, list[np.ndarray]] = {
            name: [] for name in ("feature", "threshold", "missing_left", "left", "right", "value", "is_leaf")
        }
        roots, offset, depth = [], 0, 0
        for iteration in classifier._predictors:
            nodes = iteration[0].nodes
            if np.any(nodes["is_categorical"]):
                raise ValueError("categorical splits are not supported")
            roots.append(offset)
            columns["feature"].append(nodes["feature_idx"].astype(np.int64))
            columns["threshold"].append(nodes["num_threshold"].astype(float))
            columns["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
            columns["left"].append(nodes["left"].astype(np.int64) + offset)
            columns["right"].append(nodes["right"].astype(np.int64) + offset)
            columns["value"].append(nodes["value"].astype(float))
            columns["is_leaf"].append(nodes["is_leaf"].astype(bool))
            depth = max(depth, int(nodes["depth"].max()))
            offset += len(nodes)
        joined = {name: np.concatenate(parts) for name, parts in columns.items()}
        return cls(
            baseline=float(np.ravel(classifier._baseline_prediction)[0]),
            roots=np.array(roots, dtype=np.int64),
            max_depth=depth,
            **joined,
        )

    def decision(self, features: np.ndarray) -> np.ndarray:
        """Raw log-odds per row, equal to the classifier's decision_function."""
        rows = features.shape[0]
        if rows == 0:
            return np.zeros(0)
        node = np.repeat(self.roots[None, :], rows, axis=0)
        row_index = np.arange(rows)[:, None]
        for _ in range(self.max_depth):
            leaf = self.is_leaf[node]
            if leaf.all():
                break
            value = features[row_index, self.feature[node]]
            go_left = np.where(np.isnan(value), self.missing_left[node], value <= self.threshold[node])
            node = np.where(leaf, node, np.where(go_left, self.left[node], self.right[node]))
        return np.asarray(self.baseline + self.value[node].sum(axis=1))

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "max_depth": self.max_depth,
            "roots": self.roots.tolist(),
            "feature": self.feature.tolist(),
            "threshold": [float(x) for x in self.threshold],
            "missing_left": self.missing_left.astype(int).tolist(),
            "left": self.left.tolist(),
            "right": self.right.tolist(),
            "value": [float(x) for x in self.value],
            "is_leaf": self.is_leaf.astype(int).tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CompactForest:
        return cls(
            baseline=float(data["baseline"]),
            max_depth=int(data["max_depth"]),
            roots=np.asarray(data["roots"], dtype=np.int64),
            feature=np.asarray(data["feature"], dtype=np.int64),
            threshold=np.asarray(data["threshold"], dtype=float),
            missing_left=np.asarray(data["missing_left"], dtype=bool),
            left=np.asarray(data["left"], dtype=np.int64),
            right=np.asarray(data["right"], dtype=np.int64),
            value=np.asarray(data["value"], dtype=float),
            is_leaf=np.asarray(data["is_leaf"], dtype=bool),
        )
