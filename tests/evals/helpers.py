"""Builders for synthetic results files used by the comparison tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from evals.models import ItemResult


def results_from_flags(
    flags: list[bool] | np.ndarray, tags: list[list[str]] | None = None
) -> list[ItemResult]:
    return [
        ItemResult(
            id=f"item-{index:03d}",
            score=1.0 if passed else 0.0,
            passed=bool(passed),
            tags=(tags[index] if tags else []),
        )
        for index, passed in enumerate(flags)
    ]


def write_results(path: Path, results: list[ItemResult]) -> Path:
    path.write_text("".join(result.model_dump_json() + "\n" for result in results))
    return path


def write_lines(path: Path, lines: list[dict[str, object] | str]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path
