"""The bundle's series, indexed the ways evidence needs them.

A series describes one service (optionally one version, one pod, one peer). Series with
a peer are read from the call edge: `service` calling `peer` measures the peer's
health as its callers see it; `service` serving `peer` is the service's own health.
Success-like error metrics near a ceiling (availability 100 %, success rate 1.0) are
turned into their failure share, so that 100 -> 97 reads as 0 -> 3, not as a 3 % dip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attribution.case import Case, SeriesData
from attribution.signals import Family, family_of
from attribution.stats import fast_median, sample_step


@dataclass(slots=True)
class Series:
    name: str
    family: Family
    service: str
    version: str | None
    pod: str | None
    peer: str | None
    bad_sign: float
    times: np.ndarray
    values: np.ndarray
    ceiling: float | None = None  # set when values are the failure share (ceiling - reported value)

    @property
    def first(self) -> float:
        return float(self.times[0])

    @property
    def last(self) -> float:
        return float(self.times[-1])


def _failure_share(item: SeriesData, family: Family) -> tuple[np.ndarray, float, float | None]:
    values = item.values
    if family != "errors" or item.bad_sign > 0 or values.size == 0:
        return values, item.bad_sign, None
    top = float(values.max())
    for ceiling in (1.0, 100.0):
        if float(values.min()) >= 0.0 and top <= ceiling * 1.0001 and top >= 0.5 * ceiling:
            return ceiling - values, 1.0, ceiling
    return values, item.bad_sign, None


def window(series: Series, low: float, high: float) -> np.ndarray:
    lo, hi = np.searchsorted(series.times, [low, high], side="left")
    return series.values[lo:hi]


def values_after(series: list[Series], split: float, until: float = float("inf")) -> np.ndarray:
    """Values observed after `split` (up to `until`), leaving out a point whose interval mostly precedes it.

    A point summarises the step before its time (a scrape's rate window, a CloudWatch
    bucket stamped at its end): one stamped less than half a step after the split
    mostly describes the time before the split.
    """
    parts = []
    for s in series:
        parts.append(window(s, split + 0.5 * sample_step(s.times), min(s.last, until) + 1))
    return np.concatenate(parts) if parts else np.zeros(0)


def values_before(series: list[Series], split: float, span: float) -> np.ndarray:
    """Values observed in the `span` seconds up to and including `split`."""
    parts = []
    for s in series:
        lo, hi = np.searchsorted(s.times, [split - span, split], side="right")
        parts.append(s.values[lo:hi])
    return np.concatenate(parts) if parts else np.zeros(0)


def pooled(series: list[Series], low: float, high: float) -> np.ndarray:
    parts = [window(s, low, high) for s in series]
    return np.concatenate(parts) if parts else np.zeros(0)


class Telemetry:
    """Series by service and metric; reference levels per metric name; the bundle's time step."""

    def __init__(self, case: Case) -> None:
        callers: set[tuple[str, str]] = set(case.edges)
        self.topology = bool(case.edges)
        self.series: list[Series] = []
        self.own: dict[str, dict[str, list[Series]]] = {}
        self.seen_by_callers: dict[str, dict[str, list[Series]]] = {}
        levels: dict[str, list[float]] = {}
        steps: list[float] = []
        for item in case.series:
            if item.values.size == 0:
                continue
            family = family_of(item.name)
            values, bad_sign, ceiling = _failure_share(item, family)
            series = Series(
                item.name,
                family,
                item.service,
                item.version,
                item.pod,
                item.peer,
                bad_sign,
                item.times,
                values,
                ceiling,
            )
            self.series.append(series)
            levels.setdefault(item.name, []).append(abs(fast_median(values)))
            steps.append(sample_step(item.times))
            calls_peer = (item.service, item.peer) in callers or not self.topology
            if item.peer is not None and item.peer != item.service and calls_peer:
                target = self.seen_by_callers.setdefault(item.peer, {})
            else:
                target = self.own.setdefault(item.service, {})
            target.setdefault(item.name, []).append(series)
        self.reference = {name: fast_median(np.array(found)) for name, found in levels.items()}
        self.step = fast_median(np.array(steps)) if steps else 60.0
        self.start = min((s.first for s in self.series), default=case.detected_at)
        self.end = max((s.last for s in self.series), default=case.detected_at)

    def metrics(self, service: str) -> dict[str, list[Series]]:
        return self.own.get(service, {})

    def has_versions(self, service: str) -> bool:
        return any(s.version is not None for found in self.metrics(service).values() for s in found)


def level_view(found: list[Series]) -> list[Series]:
    """The service-level series if there is one, else every per-version or per-pod series (pooled)."""
    plain = [s for s in found if s.version is None and s.pod is None and s.peer is None]
    return plain or found


def merged(found: list[Series]) -> tuple[np.ndarray, np.ndarray]:
    """One time-ordered sample from several series (a service seen through its pods or versions).

    Points are binned on the coarsest series' step and each bin takes the median of the
    series reporting in it, so pods that differ in level do not read as noise.
    """
    if len(found) == 1:
        return found[0].times, found[0].values
    times = np.concatenate([s.times for s in found])
    values = np.concatenate([s.values for s in found])
    step = max(sample_step(s.times) for s in found)
    bins = np.floor((times - times.min()) / step).astype(np.int64)
    order = np.lexsort((values, bins))
    bins, times, values = bins[order], times[order], values[order]
    _, start, counts = np.unique(bins, return_index=True, return_counts=True)
    out_times = np.maximum.reduceat(times, start)
    out_values = 0.5 * (values[start + (counts - 1) // 2] + values[start + counts // 2])
    return out_times, out_values
