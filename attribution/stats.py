"""Robust statistics on short, noisy, irregular metric series."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z_CLIP = 50.0
MIN_WINDOW_S = 1800.0
SHORT_SERIES = 12


@dataclass(slots=True, frozen=True)
class Shift:
    """A before/after comparison, oriented so that positive means 'got worse'."""

    z: float  # robust standardised shift
    ratio: float  # after / before level (raw, not oriented)
    badness: float  # oriented log ratio
    n_before: int
    n_after: int

    @property
    def known(self) -> bool:
        return self.n_before > 0 and self.n_after > 0


NO_SHIFT = Shift(z=0.0, ratio=1.0, badness=0.0, n_before=0, n_after=0)


def fast_median(values: np.ndarray) -> float:
    """Median without np.median's per-call overhead (these arrays are small and finite)."""
    ordered = np.sort(values)
    n = ordered.size
    return float(0.5 * (ordered[(n - 1) // 2] + ordered[n // 2]))


def sample_step(times: np.ndarray) -> float:
    if times.size < 2:
        return 60.0
    return fast_median(np.diff(times))


def noise_scale(values: np.ndarray) -> float:
    """Point-to-point noise from successive differences; a few level jumps barely move it.

    A short series (a handful of coarse buckets) cannot tell its noise from its jumps,
    so it gets a relative scale instead.
    """
    if values.size < 2:
        return 0.0
    if values.size < SHORT_SERIES:
        return max(0.5 * fast_median(np.abs(np.diff(values))), 0.01 * fast_median(np.abs(values)))
    return float(1.4826 * fast_median(np.abs(np.diff(values))) / np.sqrt(2.0))


def _oriented(before: float, after: float, bad_sign: float, scale: float) -> tuple[float, float, float]:
    level = max(abs(before), abs(after))
    floor = max(scale, 0.01 * abs(before), 1e-9 + 1e-6 * level)
    z = float(np.clip(bad_sign * (after - before) / floor, -Z_CLIP, Z_CLIP))
    eps = 1e-3 * level + 1e-12
    ratio = (abs(after) + eps) / (abs(before) + eps)
    badness = float(np.clip(bad_sign * np.log(ratio), -5.0, 5.0))
    return z, float(ratio), badness


def window_shift(
    times: np.ndarray, values: np.ndarray, split: float, bad_sign: float, scale: float, window_s: float
) -> Shift:
    """Median after `split` against median before it, within `window_s` on each side."""
    lo, mid, hi = np.searchsorted(times, [split - window_s, split, split + window_s], side="left")
    before = values[lo:mid]
    after = values[mid:hi]
    if before.size == 0 or after.size == 0:
        return Shift(z=0.0, ratio=1.0, badness=0.0, n_before=int(before.size), n_after=int(after.size))
    before_level = fast_median(before)
    after_level = fast_median(after)
    if before.size >= 5:
        scale = max(scale, 1.4826 * fast_median(np.abs(before - before_level)))
    z, ratio, badness = _oriented(before_level, after_level, bad_sign, scale)
    return Shift(z=z, ratio=ratio, badness=badness, n_before=int(before.size), n_after=int(after.size))


def versus(new: np.ndarray, old: np.ndarray, bad_sign: float) -> Shift:
    """New-version values against old-version values over the same period (canary style)."""
    if new.size == 0 or old.size == 0:
        return NO_SHIFT
    old_level = fast_median(old)
    new_level = fast_median(new)
    scale = max(noise_scale(old), 1.4826 * fast_median(np.abs(old - old_level)) if old.size >= 5 else 0.0)
    z, ratio, badness = _oriented(old_level, new_level, bad_sign, scale)
    return Shift(z=z, ratio=ratio, badness=badness, n_before=int(old.size), n_after=int(new.size))


def change_point(times: np.ndarray, values: np.ndarray, bad_sign: float, scale: float) -> tuple[float, float]:
    """Most likely time the series stepped in its bad direction, and the step's strength.

    A single mean-shift scan (CUSUM style): for every split the oriented difference of
    means, weighted by how balanced the split is, over the series' noise.
    """
    n = values.size
    if n < 3:
        return float("nan"), 0.0
    cumulative = np.cumsum(values)
    total = cumulative[-1]
    k = np.arange(1, n)
    mean_before = cumulative[:-1] / k
    mean_after = (total - cumulative[:-1]) / (n - k)
    level = fast_median(np.abs(values))
    floor = max(scale, 0.01 * level, 1e-9)
    score = bad_sign * (mean_after - mean_before) * np.sqrt(k * (n - k) / n) / floor
    best = int(np.argmax(score))
    return float(times[best + 1]), float(min(score[best], 10 * Z_CLIP))
