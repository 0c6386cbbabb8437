"""One scheduled look: compare the newest runs with the pinned baseline under the alpha-spending rule."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from evals.models import EvalManifest
from evals.sequential import LookPolicy
from evals.stats import Comparison, ComparisonSettings, compare
from evals.store import EvalStore, HistoryPoint

LookStatus = Literal["compared", "baseline_pinned", "collecting_baseline"]


class LookVerdict(BaseModel):
    status: LookStatus
    run_id: str
    look: int | None = None
    alpha_per_look: float | None = None
    baseline_run_ids: list[str] = Field(default_factory=list)
    window_run_ids: list[str] = Field(default_factory=list)
    comparison: Comparison | None = None
    series: list[tuple[datetime, float]] = Field(default_factory=list)
    note: str = ""

    @property
    def regression(self) -> bool:
        return self.comparison is not None and self.comparison.regression


def policy_of(manifest: EvalManifest) -> LookPolicy:
    return LookPolicy(
        alpha=manifest.alpha,
        horizon_looks=manifest.horizon_looks,
        window_runs=manifest.window_runs,
        baseline_runs=manifest.baseline_runs,
        min_effect=manifest.min_effect,
    )


def settings_of(manifest: EvalManifest) -> ComparisonSettings:
    return ComparisonSettings(
        metric=manifest.metric,
        alpha=manifest.alpha,
        min_effect=manifest.min_effect,
        critical_tags=manifest.critical_tags,
    )


def evaluate_look(
    store: EvalStore, manifest: EvalManifest, run_id: str, series_points: int = 96
) -> LookVerdict:
    """Decide on the stored run `run_id`; records the point in the score history either way.

    Without a baseline the first `baseline_runs` runs are pinned automatically. The window pools
    the newest runs since the baseline was pinned and since the last alarm, so a healed service
    is judged on fresh runs only.
    """
    summary = store.load_summary(run_id)
    policy = policy_of(manifest)
    pinned = store.baseline()
    verdict: LookVerdict
    if pinned is None:
        stored = store.run_ids()
        if len(stored) >= policy.baseline_runs:
            pin = store.pin_baseline(stored[-policy.baseline_runs :], runs=policy.baseline_runs)
            verdict = LookVerdict(
                status="baseline_pinned",
                run_id=run_id,
                baseline_run_ids=pin.run_ids,
                note=f"no baseline was pinned: pinned the latest {policy.baseline_runs} runs",
            )
        else:
            verdict = LookVerdict(
                status="collecting_baseline",
                run_id=run_id,
                note=f"collecting a baseline: {len(stored)} of {policy.baseline_runs} runs",
            )
        store.append_history(
            HistoryPoint(
                run_id=run_id,
                time=summary.finished_at,
                pass_rate=summary.pass_rate,
                mean_score=summary.mean_score,
            )
        )
    else:
        pin, baseline_runs = pinned
        since_pin = [r for r in store.runs_after(pin.pinned_at) if r not in pin.run_ids]
        if run_id not in since_pin:
            since_pin.append(run_id)
        alarmed = {point.run_id for point in store.history() if point.regression}
        last_alarm = max(
            (index for index, r in enumerate(since_pin) if r in alarmed and r != run_id), default=-1
        )
        fresh = since_pin[last_alarm + 1 :]
        window_ids = fresh[-policy.window_runs :]
        look = len(since_pin)
        comparison = compare(
            baseline_runs,
            [store.load_run(r) for r in window_ids],
            settings_of(manifest),
            alpha=policy.alpha_per_look,
        )
        store.append_history(
            HistoryPoint(
                run_id=run_id,
                time=summary.finished_at,
                pass_rate=summary.pass_rate,
                mean_score=summary.mean_score,
                regression=comparison.regression,
                p_value=comparison.p_value,
                look=look,
            )
        )
        verdict = LookVerdict(
            status="compared",
            run_id=run_id,
            look=look,
            alpha_per_look=policy.alpha_per_look,
            baseline_run_ids=pin.run_ids,
            window_run_ids=window_ids,
            comparison=comparison,
        )
    verdict.series = [(point.time, point.pass_rate) for point in store.history(limit=series_points)]
    return verdict
