"""Repeated looks: how scheduled runs keep the false-alarm rate at the configured level.

Rule (documented in evals/README.md): Bonferroni alpha spending over a horizon of H looks.
Each look compares the pinned baseline with the last w runs (`window_runs`) using the exact
conditional test of evals.stats at level alpha / H. Every single look is an exact test under
"no change" whatever the baseline's luck, so by the union bound the chance of any false alarm
within H looks is at most alpha, however the looks depend on each other. After H looks the
next H get a fresh alpha: the guarantee is "at most alpha false alarms per H looks".

`simulate` checks the rule with many simulated histories, vectorised over histories.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from evals.stats import exchangeable_tail


class LookPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    horizon_looks: int = Field(default=100, ge=1)
    window_runs: int = Field(default=4, ge=1)
    baseline_runs: int = Field(default=3, ge=1)
    min_effect: float = Field(default=0.02, ge=0.0, le=1.0)

    @property
    def alpha_per_look(self) -> float:
        return self.alpha / self.horizon_looks

    def window_for_look(self, look: int) -> int:
        """Runs pooled at look `look` (1-based): fewer before the window has filled."""
        return max(1, min(look, self.window_runs))


class SimulationModel(BaseModel):
    """How simulated runs behave: stable items plus per-run flakes, as a temperature-0 service shows."""

    model_config = ConfigDict(extra="forbid")

    items: int = Field(default=200, ge=10)
    pass_rate: float = Field(default=0.9, gt=0.0, lt=1.0)
    flake_rate: float = Field(default=0.02, ge=0.0, lt=0.5)
    drop: float = Field(default=0.0, ge=0.0, lt=1.0)
    change_at_look: int | None = None


class SimulationResult(BaseModel):
    histories: int
    looks: int
    alarm_rate: float
    detected_within: int | None = None
    power: float | None = None
    median_delay_looks: float | None = None
    alpha_per_look: float


def simulated_runs(
    model: SimulationModel, histories: int, baseline_runs: int, looks: int, rng: np.random.Generator
) -> tuple[NDArray[np.int8], NDArray[np.int8]]:
    """Baseline (histories, B, items) and runs (histories, looks, items) as 0/1 pass outcomes."""
    passing = round(model.pass_rate * model.items)
    truth = np.zeros((histories, model.items), dtype=np.int8)
    truth[:, :passing] = 1
    flakes = rng.random((histories, baseline_runs, model.items)) < model.flake_rate
    baseline = truth[:, None, :] ^ flakes.astype(np.int8)
    runs = np.broadcast_to(truth[:, None, :], (histories, looks, model.items)).copy()
    if model.drop > 0 and model.change_at_look is not None:
        dropped = round(model.drop * model.items)
        runs[:, model.change_at_look - 1 :, passing - dropped : passing] = 0
    runs ^= (rng.random(runs.shape) < model.flake_rate).astype(np.int8)
    return baseline, runs


def look_alarms(baseline: NDArray[np.int8], runs: NDArray[np.int8], policy: LookPolicy) -> NDArray[np.bool_]:
    """(histories, looks) booleans: did the rule raise a regression at each look?"""
    histories, looks, _ = runs.shape
    baseline_runs = baseline.shape[1]
    base_totals = baseline.sum(axis=1, dtype=np.int32)
    alarms = np.zeros((histories, looks), dtype=bool)
    cumulative = np.concatenate([np.zeros_like(runs[:, :1, :], dtype=np.int32), runs.cumsum(axis=1)], axis=1)
    for look in range(1, looks + 1):
        window = policy.window_for_look(look)
        window_passes = cumulative[:, look, :] - cumulative[:, look - window, :]
        total_runs = baseline_runs + window
        totals = base_totals + window_passes
        informative = (totals > 0) & (totals < total_runs)
        observed = (base_totals * informative).sum(axis=1)
        counts = np.stack([(totals == s).sum(axis=1) for s in range(1, total_runs)], axis=1)
        keys = np.concatenate([counts, observed[:, None]], axis=1)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        p_unique = np.array(
            [
                exchangeable_tail(baseline_runs, window, tuple(int(v) for v in row[:-1]), int(row[-1]))
                for row in unique
            ]
        )
        p_values = p_unique[inverse.reshape(-1)]
        delta = window_passes.mean(axis=1) / window - base_totals.mean(axis=1) / baseline_runs
        alarms[:, look - 1] = (p_values < policy.alpha_per_look) & (delta <= -policy.min_effect)
    return alarms


def simulate(
    policy: LookPolicy,
    model: SimulationModel,
    histories: int = 1000,
    looks: int = 100,
    detect_within: int | None = None,
    seed: int = 0,
) -> SimulationResult:
    """Alarm rate over `looks` looks; with a drop, the share detected within `detect_within` looks of it."""
    rng = np.random.default_rng(seed)
    baseline, runs = simulated_runs(model, histories, policy.baseline_runs, looks, rng)
    alarms = look_alarms(baseline, runs, policy)
    result = SimulationResult(
        histories=histories,
        looks=looks,
        alarm_rate=float(alarms.any(axis=1).mean()),
        alpha_per_look=policy.alpha_per_look,
    )
    if model.drop > 0 and model.change_at_look is not None:
        within = detect_within or policy.window_runs
        start = model.change_at_look - 1
        after = alarms[:, start : start + within]
        detected = after.any(axis=1)
        first = np.where(detected, after.argmax(axis=1) + 1, 0)
        result.detected_within = within
        result.power = float(detected.mean())
        result.median_delay_looks = float(np.median(first[detected])) if detected.any() else None
        result.alarm_rate = float(alarms[:, :start].any(axis=1).mean())
    return result
