"""Paired regression statistics for golden-set runs.

Pass/fail: an exact conditional test. Under "no change" the B baseline runs and the w candidate
runs are exchangeable draws per item, so given each item's total passes s_i over the B+w runs,
the baseline's share of them is hypergeometric (s_i successes, B draws from B+w), independently
across items. U = total baseline passes over the informative items (0 < s_i < B+w); the one-sided
p-value is P(U >= observed), computed exactly by convolution. With B = w = 1 this is exactly
McNemar's exact (binomial) test on the discordant pairs.

Scores: Wilcoxon signed-rank on per-item differences (one-sided), with a paired bootstrap
confidence interval for the mean delta. A drop smaller than `min_effect` is never a regression.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats as scipy_stats

from evals.models import ItemResult

Metric = Literal["pass_rate", "score"]


class ComparisonError(ValueError):
    """Results that cannot be compared (no overlapping ids, empty input)."""


class ComparisonSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: Metric = "pass_rate"
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    min_effect: float = Field(default=0.02, ge=0.0, le=1.0)
    critical_tags: list[str] = Field(default_factory=list)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    bootstrap_resamples: int = Field(default=2000, ge=100)
    seed: int = 0


class MetricComparison(BaseModel):
    regression: bool
    baseline: float
    candidate: float
    delta: float
    ci: tuple[float, float]
    p_value: float
    n: int
    test: str
    alpha: float


class Comparison(MetricComparison):
    metric: Metric
    min_effect: float
    baseline_runs: int
    candidate_runs: int
    tags: dict[str, MetricComparison] = Field(default_factory=dict)


class PairedRuns(BaseModel):
    """Baseline and candidate outcomes aligned by item id (candidates: one row per run)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    ids: list[str]
    tags: list[list[str]]
    base_pass: NDArray[np.int64]
    cand_pass: NDArray[np.int64]
    base_score: NDArray[np.float64]
    cand_score: NDArray[np.float64]


def pair_runs(
    baselines: Sequence[Sequence[ItemResult]], candidates: Sequence[Sequence[ItemResult]]
) -> PairedRuns:
    if not baselines or any(not run for run in baselines):
        raise ComparisonError("baseline has no items")
    if not candidates or any(not run for run in candidates):
        raise ComparisonError("candidate has no items")
    base_by_id = [{result.id: result for result in run} for run in baselines]
    runs_by_id = [{result.id: result for result in run} for run in candidates]
    shared = [i for i in base_by_id[0] if all(i in run for run in [*base_by_id, *runs_by_id])]
    if not shared:
        raise ComparisonError("baseline and candidate share no item ids")

    def matrix(runs: list[dict[str, ItemResult]], field: str, dtype: type) -> NDArray[Any]:
        return np.array([[getattr(run[i], field) for i in shared] for run in runs], dtype=dtype)

    return PairedRuns(
        ids=shared,
        tags=[base_by_id[0][i].tags for i in shared],
        base_pass=matrix(base_by_id, "passed", np.int64),
        cand_pass=matrix(runs_by_id, "passed", np.int64),
        base_score=matrix(base_by_id, "score", np.float64),
        cand_score=matrix(runs_by_id, "score", np.float64),
    )


@lru_cache(maxsize=4096)
def _group_pmf(baseline_runs: int, total_runs: int, passes: int, items: int) -> NDArray[np.float64]:
    """Law of the baseline passes summed over `items` items that each passed `passes` of `total_runs` runs."""
    single = scipy_stats.hypergeom.pmf(
        np.arange(min(passes, baseline_runs) + 1), total_runs, passes, baseline_runs
    )
    result, power, remaining = np.ones(1), single, items
    while remaining:
        if remaining & 1:
            result = np.convolve(result, power)
        remaining >>= 1
        if remaining:
            power = np.convolve(power, power)
    return result


@lru_cache(maxsize=200_000)
def exchangeable_tail(baseline_runs: int, window: int, counts: tuple[int, ...], observed: int) -> float:
    """P(U >= observed) where counts[s-1] items passed s of the baseline_runs + window runs."""
    pmf = np.ones(1)
    for passes, items in enumerate(counts, start=1):
        if items:
            pmf = np.convolve(pmf, _group_pmf(baseline_runs, baseline_runs + window, passes, items))
    return float(min(1.0, max(0.0, pmf[observed:].sum())))


def exchangeable_pass_test(base_pass: NDArray[np.int64], cand_pass: NDArray[np.int64]) -> float:
    """One-sided p-value that the baseline runs pass more than the candidate runs (see module doc).

    base_pass: (baseline runs, items); cand_pass: (candidate runs, items).
    """
    baseline_runs, window = base_pass.shape[0], cand_pass.shape[0]
    total_runs = baseline_runs + window
    base_totals = base_pass.sum(axis=0)
    totals = base_totals + cand_pass.sum(axis=0)
    informative = (totals > 0) & (totals < total_runs)
    counts = tuple(int(np.count_nonzero(totals == s)) for s in range(1, total_runs))
    observed = int(base_totals[informative].sum())
    return exchangeable_tail(baseline_runs, window, counts, observed)


def wilcoxon_drop_test(base_score: NDArray[np.float64], cand_score: NDArray[np.float64]) -> float:
    differences = base_score.mean(axis=0) - cand_score.mean(axis=0)
    if not np.any(np.abs(differences) > 1e-12):
        return 1.0
    return float(scipy_stats.wilcoxon(differences, alternative="greater", zero_method="wilcox").pvalue)


def bootstrap_ci(
    differences: NDArray[np.float64], confidence: float, resamples: int, seed: int
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, differences.size, size=(resamples, differences.size))
    means = differences[picks].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return (round(float(low), 6), round(float(high), 6))


def _compare_subset(
    paired: PairedRuns, mask: NDArray[np.bool_], settings: ComparisonSettings, alpha: float
) -> MetricComparison:
    baseline_runs, window = paired.base_pass.shape[0], paired.cand_pass.shape[0]
    if settings.metric == "pass_rate":
        base = paired.base_pass[:, mask].astype(np.float64)
        cand = paired.cand_pass[:, mask].astype(np.float64)
        p_value = exchangeable_pass_test(paired.base_pass[:, mask], paired.cand_pass[:, mask])
        single = baseline_runs == 1 and window == 1
        test = "mcnemar-exact" if single else f"exact-conditional-{baseline_runs}x{window}-runs"
    else:
        base, cand = paired.base_score[:, mask], paired.cand_score[:, mask]
        p_value = wilcoxon_drop_test(base, cand)
        test = "wilcoxon-signed-rank"
    differences = cand.mean(axis=0) - base.mean(axis=0)
    delta = float(differences.mean())
    regression = p_value < alpha and delta <= -settings.min_effect
    return MetricComparison(
        regression=bool(regression),
        baseline=round(float(base.mean()), 6),
        candidate=round(float(cand.mean()), 6),
        delta=round(delta, 6),
        ci=bootstrap_ci(differences, settings.confidence, settings.bootstrap_resamples, settings.seed),
        p_value=float(p_value),
        n=int(mask.sum()),
        test=test,
        alpha=alpha,
    )


def compare(
    baselines: Sequence[Sequence[ItemResult]],
    candidates: Sequence[Sequence[ItemResult]],
    settings: ComparisonSettings,
    alpha: float | None = None,
) -> Comparison:
    """Regression if the overall metric, or that of any critical tag, dropped significantly.

    `alpha` (default settings.alpha) is split evenly over the overall test and each critical
    tag present in the data (Bonferroni), so adding tags does not add false alarms.
    """
    paired = pair_runs(baselines, candidates)
    present = [tag for tag in settings.critical_tags if any(tag in tags for tags in paired.tags)]
    level = (alpha if alpha is not None else settings.alpha) / (1 + len(present))
    overall = _compare_subset(paired, np.ones(len(paired.ids), dtype=bool), settings, level)
    tag_results = {
        tag: _compare_subset(paired, np.array([tag in tags for tags in paired.tags]), settings, level)
        for tag in present
    }
    return Comparison(
        **overall.model_dump(exclude={"regression"}),
        regression=overall.regression or any(result.regression for result in tag_results.values()),
        metric=settings.metric,
        min_effect=settings.min_effect,
        baseline_runs=len(baselines),
        candidate_runs=len(candidates),
        tags=tag_results,
    )


def comparison_json(comparison: Comparison) -> dict[str, object]:
    """The documented CLI shape: regression, metric, baseline, candidate, delta, ci, p_value, n, test, tags."""
    return {
        "regression": comparison.regression,
        "metric": comparison.metric,
        "baseline": comparison.baseline,
        "candidate": comparison.candidate,
        "delta": comparison.delta,
        "ci": list(comparison.ci),
        "p_value": comparison.p_value,
        "n": comparison.n,
        "test": comparison.test,
        "tags": {
            tag: {
                "regression": result.regression,
                "baseline": result.baseline,
                "candidate": result.candidate,
                "delta": result.delta,
                "ci": list(result.ci),
                "p_value": result.p_value,
                "n": result.n,
                "test": result.test,
            }
            for tag, result in comparison.tags.items()
        },
    }
