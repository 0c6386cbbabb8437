"""A fitted HistGradientBoostingClassifier as plain arrays: JSON-friendly and fast on a few rows.

scikit-learn's own predictor walks each tree separately (250 calls per bundle); here
all (tree, row) pairs descend together, one level per step, in numpy.
"""

from __future__ import annotations

import itertools
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
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    is_leaf: np.ndarray
    max_depth: int

    @classmethod
    def from_classifier(cls, classifier: HistGradientBoostingClassifier) -> CompactForest:
        columns: dict[str, list[np.ndarray]] = {
            name: [] for name in ("feature", "threshold", "left", "right", "value", "is_leaf")
        }
        roots, offset, depth = [], 0, 0
        for iteration in classifier._predictors:
            nodes = iteration[0].nodes
            if np.any(nodes["is_categorical"]):
                raise ValueError("categorical splits are not supported")
            roots.append(offset)
            columns["feature"].append(nodes["feature_idx"].astype(np.int64))
            columns["threshold"].append(nodes["num_threshold"].astype(float))
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
            go_left = value <= self.threshold[node]  # features are never NaN (see features.extract)
            node = np.where(leaf, node, np.where(go_left, self.left[node], self.right[node]))
        return np.asarray(self.baseline + self.value[node].sum(axis=1))

    def to_json(self) -> dict[str, Any]:
        """Per tree, a list of nodes: [feature, threshold, left, right] inside, a bare value at a leaf.

        Child indices are local to the tree; numbers keep 9 significant digits (far finer than
        the binned thresholds), which keeps a 600-tree model well under a megabyte.
        """
        trees = []
        bounds = [*self.roots.tolist(), self.feature.size]
        for begin, end in itertools.pairwise(bounds):
            nodes: list[Any] = []
            for i in range(begin, end):
                if self.is_leaf[i]:
                    nodes.append(_short(self.value[i]))
                else:
                    nodes.append([int(self.feature[i]), _short(self.threshold[i]), int(self.left[i]) - begin,
                                  int(self.right[i]) - begin])  # fmt: skip
            trees.append(nodes)
        return {"baseline": self.baseline, "max_depth": self.max_depth, "trees": trees}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CompactForest:
        feature: list[int] = []
        left: list[int] = []
        right: list[int] = []
        roots: list[int] = []
        threshold: list[float] = []
        value: list[float] = []
        is_leaf: list[bool] = []
        for nodes in data["trees"]:
            begin = len(feature)
            roots.append(begin)
            for node in nodes:
                if isinstance(node, list):
                    feature.append(int(node[0]))
                    threshold.append(float(node[1]))
                    left.append(begin + int(node[2]))
                    right.append(begin + int(node[3]))
                    value.append(0.0)
                    is_leaf.append(False)
                else:
                    feature.append(0)
                    threshold.append(0.0)
                    left.append(0)
                    right.append(0)
                    value.append(float(node))
                    is_leaf.append(True)
        return cls(
            baseline=float(data["baseline"]),
            max_depth=int(data["max_depth"]),
            roots=np.asarray(roots, dtype=np.int64),
            feature=np.asarray(feature, dtype=np.int64),
            threshold=np.asarray(threshold, dtype=float),
            left=np.asarray(left, dtype=np.int64),
            right=np.asarray(right, dtype=np.int64),
            value=np.asarray(value, dtype=float),
            is_leaf=np.asarray(is_leaf, dtype=bool),
        )


def _short(number: float) -> float:
    return float(f"{number:.9g}")
