"""Turn simulated request physics into the series Prometheus would return.

Counts are drawn per step (requests are Poisson, errors binomial), so low traffic is
noisy and an idle version has no error rate at all. A counter appears only once it has
been incremented, a pod's series lives only while the pod does, a freshly scheduled
pod misses scrapes, container CPU and memory come from the kubelet whether or not the
application exports anything. What a bundle contains is decided per service by the
telemetry layout, never by which change is the culprit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from attribution.nuisance.physics import Cohort, ServiceState
from attribution.nuisance.rollout import Pod
from attribution.nuisance.topology import Topology

RESOURCE_METRICS = ("cpu", "memory", "gpu_cache_usage")
EXPLICIT_DIRECTION = {"requests": "down", "hallucination_rate": "up", "tokens_per_s": "down"}


@dataclass
class Telemetry:
    """How this bundle's monitoring is set up (one choice per bundle, per service)."""

    error_metric: str
    p99: bool
    resource_source: str  # "kubelet": every pod, "app": only pods whose exporter works
    aggregate: str  # "sum" | "avg" for resource series above pod level
    layouts: dict[str, tuple[str, ...]]
    scraped: dict[str, bool]
    peer_edges: list[tuple[str, str, str]]
    eval_interval: float
    eval_phase: float
    eval_per_version: bool
    extra_metrics: dict[str, list[str]] = field(default_factory=dict)
    symptom_service: str | None = None
    symptom_metric: str | None = None
    symptom_visibility: str = "normal"  # normal | flat | absent
    drop_symptom_service: bool = False


@dataclass
class _Counts:
    requests: np.ndarray
    errors: np.ndarray
    errors_clean: np.ndarray
    rps_actual: np.ndarray


def _metrics_for(role: str, telemetry: Telemetry, service: str) -> list[str]:
    names = ["requests", telemetry.error_metric, "latency_ms"]
    if telemetry.p99:
        names.append("latency_p99_ms")
    if role == "llm":
        names += ["ttft_ms", "gpu_cache_usage"]
    names += ["cpu", "memory"]
    return names + telemetry.extra_metrics.get(service, [])


def emit_series(
    rng: np.random.Generator,
    topology: Topology,
    states: dict[str, ServiceState],
    grid: np.ndarray,
    times: list[datetime],
    step: float,
    telemetry: Telemetry,
) -> list[dict[str, Any]]:
    series: list[dict[str, Any]] = []
    counts: dict[str, dict[int, _Counts]] = {}
    for name, state in states.items():
        counts[name] = {id(c): _draw_counts(rng, state, c, step) for c in state.cohorts}
    for name in topology.services:
        if not telemetry.scraped.get(name, False):
            continue
        if telemetry.drop_symptom_service and name == telemetry.symptom_service:
            continue
        state = states[name]
        for metric in _metrics_for(state.service.role, telemetry, name):
            if _hidden(telemetry, name, metric):
                continue
            clean = (
                telemetry.symptom_visibility == "flat"
                and name == telemetry.symptom_service
                and metric == telemetry.symptom_metric
            )
            for granularity in _granularities(telemetry, name, metric):
                for key, group in _groups(state.cohorts, granularity):
                    points = _series_points(
                        rng, state, group, counts[name], metric, grid, step, telemetry, clean
                    )
                    if points is None:
                        continue
                    version, pod = key
                    series.append(_series(metric, name, version, pod, None, points, times))
    for caller, callee, side in telemetry.peer_edges:
        owner = caller if side == "client" else callee
        if not telemetry.scraped.get(owner, False):
            continue
        if telemetry.drop_symptom_service and owner == telemetry.symptom_service:
            continue
        series.extend(_peer_series(rng, topology, states, caller, callee, side, grid, step, telemetry, times))
    return series


def _granularities(telemetry: Telemetry, service: str, metric: str) -> tuple[str, ...]:
    """Evaluations score a version, not a pod; judged quality samples are too thin per pod."""
    layout = telemetry.layouts[service]
    if metric == "eval_score":
        return ("version",) if telemetry.eval_per_version else ("service",)
    if metric in ("retrieval_precision", "hallucination_rate"):
        return tuple(item for item in layout if item != "pod") or ("version",)
    return layout


def _hidden(telemetry: Telemetry, service: str, metric: str) -> bool:
    return (
        telemetry.symptom_visibility == "absent"
        and service == telemetry.symptom_service
        and metric == telemetry.symptom_metric
    )


def _series(
    metric: str,
    service: str,
    version: str | None,
    pod: str | None,
    peer: str | None,
    points: tuple[np.ndarray, np.ndarray],
    times: list[datetime],
) -> dict[str, Any]:
    indices, values = points
    document: dict[str, Any] = {
        "name": metric,
        "service": service,
        "version": version,
        "pod": pod,
        "peer": peer,
    }
    if metric in EXPLICIT_DIRECTION:
        document["bad_direction"] = EXPLICIT_DIRECTION[metric]
    rounded = _significant(np.asarray(values, dtype=float)).tolist()
    document["points"] = [[times[i], v] for i, v in zip(indices.tolist(), rounded, strict=True)]
    return document


def _significant(values: np.ndarray, digits: int = 5) -> np.ndarray:
    """Round to a few significant digits, as an exporter's text format would print them."""
    finite = np.where(np.isfinite(values), values, 0.0)
    magnitude = np.floor(np.log10(np.where(finite == 0, 1.0, np.abs(finite))))
    scale = 10.0 ** (digits - 1 - magnitude)
    return np.round(finite * scale) / scale


def _draw_counts(rng: np.random.Generator, state: ServiceState, cohort: Cohort, step: float) -> _Counts:
    rate = state.service.rps * state.load * cohort.weight * step
    requests = rng.poisson(np.maximum(rate, 0.0))
    probability = np.clip(cohort.err + state.extra_err, 0.0, 1.0)
    probability_clean = np.clip(cohort.err_clean + state.extra_err, 0.0, 1.0)
    errors = rng.binomial(requests, probability)
    errors_clean = rng.binomial(requests, probability_clean)
    if cohort.idle:
        # Requests reach it (callers time out on them) but it records no work at all.
        silent = np.zeros_like(requests)
        return _Counts(silent, silent, silent, rate / step)
    return _Counts(requests, errors, errors_clean, rate / step)


def _groups(
    cohorts: list[Cohort], granularity: str
) -> list[tuple[tuple[str | None, str | None], list[Cohort]]]:
    if granularity == "service":
        return [((None, None), cohorts)]
    groups: dict[tuple[str | None, str | None], list[Cohort]] = {}
    for cohort in cohorts:
        key = (cohort.label, None) if granularity == "version" else (cohort.label, cohort.pod.name)
        groups.setdefault(key, []).append(cohort)
    return list(groups.items())


def _alive(pods: list[Pod], grid: np.ndarray) -> np.ndarray:
    mask = np.zeros(grid.size, dtype=bool)
    for pod in pods:
        mask |= pod.alive(grid)
    return mask


def _unique_pods(group: list[Cohort]) -> list[Pod]:
    seen: dict[str, Pod] = {}
    for cohort in group:
        seen.setdefault(cohort.pod.name, cohort.pod)
    return list(seen.values())


def _series_points(
    rng: np.random.Generator,
    state: ServiceState,
    group: list[Cohort],
    counts: dict[int, _Counts],
    metric: str,
    grid: np.ndarray,
    step: float,
    telemetry: Telemetry,
    clean: bool,
) -> tuple[np.ndarray, np.ndarray] | None:
    service = state.service
    if metric in RESOURCE_METRICS:
        members = group if telemetry.resource_source == "kubelet" else [c for c in group if c.reports]
        if not members or (metric == "gpu_cache_usage" and service.role != "llm"):
            return None
        return _resource_points(
            rng, state, members, metric, grid, step, telemetry, len(group) == len(state.cohorts)
        )
    members = [c for c in group if c.reports]
    if not members:
        return None
    requests = sum(counts[id(c)].requests for c in members)
    errors = sum(counts[id(c)].errors_clean if clean else counts[id(c)].errors for c in members)
    # A labelled counter exists once incremented (or, for an idle exporter, once scraped).
    started = np.zeros(grid.size, dtype=bool)
    for c in members:
        first = np.flatnonzero(counts[id(c)].requests > 0)
        if c.idle:
            started |= grid >= c.pod.ready
        elif first.size:
            started |= np.arange(grid.size) >= first[0]
    exists = started & _alive(_unique_pods(members), grid)
    exists &= _scrape_mask(rng, members, grid, len(group) == len(state.cohorts))
    served = np.asarray(requests > 0)
    if metric == "requests":
        return _points(exists, np.asarray(requests / step, dtype=float))
    if metric in ("error_rate", "success_rate", "availability"):
        ratio = errors / np.maximum(requests, 1)
        value = ratio if metric == "error_rate" else 1.0 - ratio
        return _points(exists & served, value)
    weights = np.array([counts[id(c)].requests for c in members], dtype=float)
    total = np.maximum(weights.sum(axis=0), 1.0)
    if metric in ("latency_ms", "latency_p99_ms", "ttft_ms"):
        source = [_latency_source(c, metric, clean) for c in members]
        if any(item is None for item in source):
            return None
        stacked = np.array(source)
        mean = (weights * stacked).sum(axis=0) / total
        noise = np.exp(rng.normal(0.0, 0.6 / np.sqrt(total) + 0.02))
        if metric == "latency_p99_ms":
            share = weights / total
            tail = np.where(share >= 0.01, stacked, 0.0).max(axis=0)
            value = np.maximum(tail * 3.2, mean * 2.5) * np.exp(rng.normal(0.0, 1.2 / np.sqrt(total) + 0.06))
        else:
            value = mean * noise
        return _points(exists & served, value)
    quality = np.array([(c.dq_clean if clean else c.dq) for c in members])
    dq = (weights * quality).sum(axis=0) / total
    if metric == "eval_score":
        return _eval_points(rng, service.quality, dq, exists & served, grid, telemetry)
    if metric == "retrieval_precision":
        value = np.clip(service.precision + dq + rng.normal(0.0, 0.025, grid.size), 0.0, 1.0)
        return _points(exists & served, value)
    if metric == "hallucination_rate":
        judged = np.minimum(requests, 40)
        rate = np.clip(service.hallucination - 0.6 * dq, 0.0, 1.0)
        value = rng.binomial(judged, rate) / np.maximum(judged, 1)
        return _points(exists & (judged > 0), value)
    return None


def _latency_source(cohort: Cohort, metric: str, clean: bool) -> np.ndarray | None:
    if metric == "ttft_ms":
        source = cohort.ttft_clean if clean else cohort.ttft
        return source if source.size else None
    return cohort.lat_clean if clean else cohort.lat


def _eval_points(
    rng: np.random.Generator,
    base: float,
    dq: np.ndarray,
    exists: np.ndarray,
    grid: np.ndarray,
    telemetry: Telemetry,
) -> tuple[np.ndarray, np.ndarray] | None:
    """A golden-set evaluation runs every few minutes; each run scores a sample of questions."""
    runs = np.mod(grid - telemetry.eval_phase, telemetry.eval_interval) < (
        grid[1] - grid[0] if grid.size > 1 else 60
    )
    mask = runs & exists
    if not mask.any():
        return None
    size = int(rng.integers(50, 200))
    expected = np.clip(base + dq, 0.01, 0.99)
    value = rng.binomial(size, expected) / size
    return _points(mask, value)


def _scrape_mask(
    rng: np.random.Generator, members: list[Cohort], grid: np.ndarray, whole: bool
) -> np.ndarray:
    if whole:
        return np.ones(grid.size, dtype=bool)
    miss = max(cohort.pod.scrape_miss for cohort in members)
    return rng.random(grid.size) >= miss


def _resource_points(
    rng: np.random.Generator,
    state: ServiceState,
    members: list[Cohort],
    metric: str,
    grid: np.ndarray,
    step: float,
    telemetry: Telemetry,
    whole: bool,
) -> tuple[np.ndarray, np.ndarray] | None:
    service = state.service
    per_pod: list[np.ndarray] = []
    alive: list[np.ndarray] = []
    for pod in _unique_pods(members):
        weight = sum(c.weight for c in state.cohorts if c.pod.name == pod.name)
        broken = np.zeros(grid.size, dtype=bool)
        for c in state.cohorts:
            if c.pod.name == pod.name:
                broken |= c.broken
        rps = service.rps * state.load * weight * np.where(broken, 0.2, 1.0)
        age = np.maximum(grid - pod.created, 0.0)
        fresh = pod.created > -1e6
        if metric == "cpu":
            burst = 0.8 * np.exp(-age / 60.0) if fresh else 0.0
            value = (service.cpu_idle + service.cpu_per_rps * rps) * pod.cpu_factor
            value = value * np.exp(rng.normal(0.0, 0.05, grid.size)) + burst
        elif metric == "memory":
            fill = pod.memory_start + (1 - pod.memory_start) * (1 - np.exp(-age / 400.0)) if fresh else 1.0
            value = service.memory_mib * pod.memory_factor * fill * np.exp(rng.normal(0.0, 0.01, grid.size))
        else:
            nominal = max(service.rps / service.replicas, 1e-6)
            fill = 1 - np.exp(-age / 150.0) if fresh else 1.0
            value = np.clip(service.gpu_cache * pod.gpu_factor * (rps / nominal) * fill, 0.0, 1.0)
            value = np.clip(value * np.exp(rng.normal(0.0, 0.05, grid.size)), 0.0, 1.0)
        per_pod.append(np.asarray(value, dtype=float))
        alive.append(pod.alive(grid))
    stacked = np.array(per_pod)
    live = np.array(alive)
    present = live.any(axis=0)
    if not present.any():
        return None
    summed = np.where(live, stacked, 0.0).sum(axis=0)
    if len(per_pod) == 1:
        value = summed
    elif telemetry.aggregate == "avg" or metric == "gpu_cache_usage":
        value = summed / np.maximum(live.sum(axis=0), 1)
    else:
        value = summed
    mask = present & _scrape_mask(rng, members, grid, whole)
    return _points(mask, value)


def _points(mask: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    indices = np.flatnonzero(mask)
    if indices.size == 0:
        return None
    return indices, np.asarray(values, dtype=float)[indices]


def _peer_series(
    rng: np.random.Generator,
    topology: Topology,
    states: dict[str, ServiceState],
    caller: str,
    callee: str,
    side: str,
    grid: np.ndarray,
    step: float,
    telemetry: Telemetry,
    times: list[datetime],
) -> list[dict[str, Any]]:
    """Per-edge series: the caller's client view (timeouts included) or the callee's per-caller view."""
    edge = next(e for e in topology.callees(caller) if e.callee == callee)
    upstream = states[caller]
    downstream = states[callee]
    rate = upstream.service.rps * upstream.load * edge.fraction * step
    requests = rng.poisson(np.maximum(rate, 0.0))
    cohorts = downstream.cohorts
    weights = np.array([c.weight for c in cohorts])
    if side == "client":
        share = np.ones(grid.size)
        err = downstream.dev_err + downstream.service.error_base
        lat = downstream.dev_lat + downstream.service.latency_ms
    else:
        reporting = np.array([c.reports and not c.idle for c in cohorts])
        if not reporting.any():
            return []
        live = weights[reporting]
        share = live.sum(axis=0)
        total = np.maximum(share, 1e-9)
        serving = [c for c in cohorts if c.reports and not c.idle]
        err = (live * np.array([np.clip(c.err, 0, 1) for c in serving])).sum(axis=0) / total
        lat = (live * np.array([c.lat for c in serving])).sum(axis=0) / total
        requests = rng.binomial(requests, np.clip(share, 0.0, 1.0))
    errors = rng.binomial(requests, np.clip(err, 0.0, 1.0))
    served = requests > 0
    owner, peer = (caller, callee) if side == "client" else (callee, caller)
    out = [_series("requests", owner, None, None, peer, (np.arange(grid.size), requests / step), times)]
    ratio = errors / np.maximum(requests, 1)
    value = ratio if telemetry.error_metric == "error_rate" else 1.0 - ratio
    error_points = _points(served, value)
    if error_points is not None:
        out.append(_series(telemetry.error_metric, owner, None, None, peer, error_points, times))
    noisy = lat * np.exp(rng.normal(0.0, 0.6 / np.sqrt(np.maximum(requests, 1)) + 0.02))
    latency_points = _points(served, noisy)
    if latency_points is not None:
        out.append(_series("latency_ms", owner, None, None, peer, latency_points, times))
    return out
