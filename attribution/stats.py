"""Robust comparisons on short, noisy, irregular metric samples.

An `Effect` compares an 'after' sample (a new version, or a service after a change)
with a 'before' sample (the old version over the same window, or the service before
the change). Its strength weighs three things and saturates on none of them alone:
consistency (how often an after value is worse than a before value: a rank statistic
that no single spike moves), magnitude (median difference over a spread with floors,
so a flat series cannot make a tiny step look huge) and sample size (a shrinkage
towards zero for a handful of points).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAGNITUDE_SCALE = 3.0  # a median shift of this many spreads counts as fully established
RELATIVE_FLOOR = 0.05  # a spread is never below 5 % of the level compared...
SHORT_FLOOR = 0.25  # ...or 25 % when the before-sample is too short to show its own noise
REFERENCE_FLOOR = 0.1  # nor, for rates near zero, below 10 % of the metric's typical level in the bundle
SHRINK_POINTS = 0.25  # strength * n / (n + SHRINK_POINTS), n = the smaller sample
ONSET_RUN_Z = 3.0  # a degradation this many noise units past the baseline has an onset
ONSET_SUSTAINED = 0.7  # from its onset on, a degradation holds for at least this share of the points...
ONSET_RECURRING = 0.4  # ...or, when none does (a flapping symptom), recurs for this share


@dataclass(slots=True, frozen=True)
class Effect:
    """After against before, oriented so that positive means 'got worse'."""

    strength: float  # in [-1, 1]
    consistency: float  # 2 * P(after worse than before) - 1, in [-1, 1]
    z: float  # median shift over the floored spread, clipped to +-50
    before_level: float
    after_level: float
    n_before: int
    n_after: int

    @property
    def ratio(self) -> float:
        level = max(abs(self.before_level), abs(self.after_level), 1e-12)
        return (abs(self.after_level) + 1e-3 * level) / (abs(self.before_level) + 1e-3 * level)


def fast_median(values: np.ndarray) -> float:
    """Median without np.median's per-call overhead (these arrays are small and finite)."""
    ordered = np.sort(values)
    n = ordered.size
    return float(0.5 * (ordered[(n - 1) // 2] + ordered[n // 2]))


def sample_step(times: np.ndarray) -> float:
    if times.size < 2:
        return 60.0
    step = fast_median(np.diff(times))
    return step if step > 0 else 60.0


def robust_spread(values: np.ndarray) -> float:
    if values.size < 3:
        return 0.0
    return 1.4826 * fast_median(np.abs(values - fast_median(values)))


def _consistency(after: np.ndarray, before: np.ndarray, bad_sign: float) -> float:
    """2 * P(after worse than before) - 1 over all pairs, ties counting half (a Mann-Whitney AUC)."""
    a = np.sort(bad_sign * before)
    b = bad_sign * after
    below = np.searchsorted(a, b, side="left")
    equal = np.searchsorted(a, b, side="right") - below
    auc = float((below + 0.5 * equal).sum()) / (a.size * b.size)
    return 2.0 * auc - 1.0


def compare(
    after: np.ndarray, before: np.ndarray, bad_sign: float, reference_level: float = 0.0
) -> Effect | None:
    """Effect of `after` against `before`; None when either side is empty (not measured).

    The spread is the before-sample's own (the after-sample may hold the step itself, or
    a recovery); `reference_level` (the metric's typical level across the bundle) floors
    it only for rates near zero, where a flat series would otherwise make any step huge.
    """
    if after.size == 0 or before.size == 0:
        return None
    before_level = fast_median(before)
    after_level = fast_median(after)
    level = max(abs(before_level), abs(after_level))
    floor = max(
        robust_spread(before),
        (RELATIVE_FLOOR if before.size >= 3 else SHORT_FLOOR) * level,
        REFERENCE_FLOOR * abs(reference_level) if level < abs(reference_level) else 0.0,
        1e-12,
    )
    z = float(np.clip(bad_sign * (after_level - before_level) / floor, -50.0, 50.0))
    consistency = _consistency(after, before, bad_sign)
    strength = _strength(z, consistency, min(after.size, before.size))
    return Effect(strength, consistency, z, before_level, after_level, int(before.size), int(after.size))


def _strength(z: float, consistency: float, n: int) -> float:
    magnitude = float(np.tanh(z / MAGNITUDE_SCALE))
    if magnitude * consistency <= 0:
        return 0.0
    return float(np.sign(magnitude) * min(abs(magnitude), abs(consistency))) * n / (n + SHRINK_POINTS)


def paired(
    new: tuple[np.ndarray, np.ndarray],
    old: tuple[np.ndarray, np.ndarray],
    bad_sign: float,
    bin_s: float,
    reference_level: float = 0.0,
) -> Effect | None:
    """New against old, compared bin by bin over the same instants ((times, values) each).

    Whatever both versions share at an instant (a ramping flag, seasonality, load, a
    failing dependency) cancels in the per-bin difference; what is left is the new
    version's own doing. Falls back to `compare` when fewer than three bins hold both.
    """
    new_times, new_values = new
    old_times, old_values = old
    if new_values.size == 0 or old_values.size == 0:
        return None
    start = min(float(new_times.min()), float(old_times.min()))
    new_bins = np.floor((new_times - start) / bin_s).astype(np.int64)
    old_bins = np.floor((old_times - start) / bin_s).astype(np.int64)
    common = np.intersect1d(new_bins, old_bins)
    if common.size < 3:
        return compare(new_values, old_values, bad_sign, reference_level)
    new_medians = np.array([fast_median(new_values[new_bins == b]) for b in common])
    old_medians = np.array([fast_median(old_values[old_bins == b]) for b in common])
    difference = bad_sign * (new_medians - old_medians)
    before_level = fast_median(old_medians)
    after_level = fast_median(new_medians)
    level = max(abs(before_level), abs(after_level))
    floor = max(
        robust_spread(difference),
        RELATIVE_FLOOR * level,
        REFERENCE_FLOOR * abs(reference_level) if level < abs(reference_level) else 0.0,
        1e-12,
    )
    z = float(np.clip(fast_median(difference) / floor, -50.0, 50.0))
    consistency = float(np.mean(np.sign(difference)))
    strength = _strength(z, consistency, int(common.size))
    return Effect(
        strength, consistency, z, before_level, after_level, int(old_values.size), int(new_values.size)
    )


def onset(times: np.ndarray, values: np.ndarray, bad_sign: float, floor: float) -> tuple[float, float, float]:
    """When the series' main degradation began, its size in noise units, and its last bad point.

    (nan, 0, nan) when there is none.

    The baseline is the first third of the series and the degradation its worst
    (smoothed) excursion, which must exceed ONSET_RUN_Z noise units. The onset is the
    first point past half the level the series settled at (or past 30 % of its worst,
    if it recovered) from which it stays bad for ONSET_SUSTAINED of the points: a bump
    before the main step (another rollout's warm-up, a cron job) does not move it
    earlier, an overshoot does not hide a lower plateau. A symptom that never stays
    bad that long (it flaps) dates from its first episode that keeps recurring, and
    one that already recovered (a transient) is still found.
    """
    none = (float("nan"), 0.0, float("nan"))
    n = values.size
    if n < 3:
        return none
    head = max(1, n // 3)
    base = fast_median(values[:head])
    noise = 0.0
    if head >= 8:
        steps = np.abs(np.diff(values[:head]))
        # Sparse counts (a low-traffic error rate: mostly 0, now and then 1/n) have a zero median step.
        noise = max(1.4826 * fast_median(steps), 0.5 * float(steps.mean())) / np.sqrt(2.0)
        noise = max(noise, robust_spread(values[:head]))  # slow wander (a trend, a season) is noise too
    scale = max(noise, floor, (RELATIVE_FLOOR if head >= 8 else SHORT_FLOOR) * abs(base), 1e-12)
    excess = bad_sign * (values - base) / scale
    smooth = excess.copy()
    if n >= 5:  # a rolling median of three; the newest point stays raw (the alert may fire on it)
        stacked = np.vstack([excess[:-2], excess[1:-1], excess[2:]])
        smooth[1:-1] = np.median(stacked, axis=0)
    peak = float(smooth[head:].max())
    if peak < ONSET_RUN_Z:
        return none
    # The level the symptom settled at (its last quarter), unless it already recovered or flaps.
    settled = fast_median(smooth[-max(1, n // 4) :])
    if settled < ONSET_RUN_Z and peak < 3 * ONSET_RUN_Z:
        return none  # neither bad now nor ever clearly bad: noise
    threshold = max(0.5 * max(settled, 0.3 * peak), 0.5 * ONSET_RUN_Z)
    bad = smooth[head:] > threshold
    share = np.cumsum(bad[::-1])[::-1] / np.arange(bad.size, 0, -1)
    candidates = np.flatnonzero(bad & (share >= ONSET_SUSTAINED))
    if candidates.size == 0:  # it comes and goes: date it from the first episode that keeps recurring
        candidates = np.flatnonzero(bad & (share >= ONSET_RECURRING))
    if candidates.size == 0:
        return none
    first = head + int(candidates[0])
    last = head + int(np.flatnonzero(bad)[-1])
    return float(times[first]), min(peak, 500.0), float(times[last])


def change_point(times: np.ndarray, values: np.ndarray, bad_sign: float, floor: float) -> tuple[float, float]:
    """Most likely time the series stepped in its bad direction, and the step's strength.

    A mean-shift scan (CUSUM style): for every split the oriented difference of means,
    weighted by how balanced the split is, over the series' point-to-point noise.
    """
    n = values.size
    if n < 3:
        return float("nan"), 0.0
    noise = 1.4826 * fast_median(np.abs(np.diff(values))) / np.sqrt(2.0)
    scale = max(noise, floor, 1e-12)
    cumulative = np.cumsum(values)
    total = cumulative[-1]
    k = np.arange(1, n)
    mean_before = cumulative[:-1] / k
    mean_after = (total - cumulative[:-1]) / (n - k)
    score = bad_sign * (mean_after - mean_before) * np.sqrt(k * (n - k) / n) / scale
    best = int(np.argmax(score))
    return float(times[best + 1]), float(min(score[best], 500.0))
