"""Synthetic incidents on AI service graphs with concurrent changes, for training and held-out tests.

Each incident has a random call graph (gateway, RAG API, retriever, vector DB, LLM
server, reranker, embedder...), metric series with autocorrelated noise, spikes,
gaps and missing series, several concurrent changes (image, config, prompt, model,
corpus, flag, scale...), and either one culprit change whose effect starts on its
service and propagates to the callers, or no culprit at all (load, a failing
dependency).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from attribution.case import Case, ChangeData, SeriesData
from attribution.catalog import (
    APP_EDGES,
    DEFAULT_KINDS,
    FAULT_CLASSES,
    KINDS_BY_SERVICE,
    METRIC_SPECS,
    PROGRESSIVE_KINDS,
    QUALITY_METRIC,
    UNRELATED_EDGES,
)


@dataclass(slots=True)
class _Effect:
    service: str
    fault: str  # errors | latency | quality | load
    start: float
    ramp_s: float
    strength: float  # in multiples of the metric's noise, before attenuation
    decay_s: float = 0.0


def _topology(rng: np.random.Generator) -> list[tuple[str, str]]:
    apps = [app for app in ("rag", "chat", "agent") if rng.random() < 0.55] or ["rag"]
    edges: list[tuple[str, str]] = []
    for app in [*apps, "auth"]:
        for edge in APP_EDGES[app]:
            if edge not in edges and (edge[0] == "gateway" or rng.random() < 0.9):
                edges.append(edge)
    for index in rng.choice(len(UNRELATED_EDGES), size=int(rng.integers(1, 4)), replace=False):
        edges.extend(UNRELATED_EDGES[int(index)])
    reachable = {"gateway"}
    for _ in range(4):
        reachable |= {callee for caller, callee in edges if caller in reachable}
    unrelated = {s for edge in edges for s in edge if s not in reachable}
    return [(a, b) for a, b in edges if a in reachable | unrelated]


def _ancestors(edges: list[tuple[str, str]], service: str) -> list[tuple[str, int]]:
    found: dict[str, int] = {service: 0}
    frontier = [service]
    while frontier:
        nxt = []
        for node in frontier:
            for caller, callee in edges:
                if callee == node and caller not in found:
                    found[caller] = found[node] + 1
                    nxt.append(caller)
        frontier = nxt
    return sorted(found.items(), key=lambda item: item[1])


def _metrics_for(service: str, rng: np.random.Generator) -> list[str]:
    names = ["error_rate", "latency_ms"]
    for name, chance in (("requests", 0.5), ("cpu", 0.4), ("memory", 0.25)):
        if rng.random() < chance:
            names.append(name)
    if service.endswith("-api") and rng.random() < 0.7:
        names.append("eval_score")
    if service in QUALITY_METRIC and rng.random() < 0.7:
        names.append(QUALITY_METRIC[service])
    if "llm" in service:
        names += ["ttft_ms", "gpu_cache_usage"]
    if service == "gateway" and rng.random() < 0.6:
        names.append("latency_p99_ms")
    return names


def _fault_metric(fault: str, metrics: list[str]) -> list[str]:
    if fault == "errors":
        return ["error_rate"]
    if fault == "latency":
        return [m for m in ("latency_ms", "latency_p99_ms", "ttft_ms", "cpu") if m in metrics] or [
            "latency_ms"
        ]
    if fault == "quality":
        return [m for m in ("eval_score", "retrieval_precision") if m in metrics]
    return ["requests", "latency_ms", "cpu", "error_rate"]


def _baseline(name: str, times: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    low, high, rel_noise, _ = METRIC_SPECS[name]
    level = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    noise = level * rel_noise * rng.uniform(0.5, 1.6)
    phi = rng.uniform(0.0, 0.8)
    shocks = rng.normal(0.0, noise * np.sqrt(1 - phi**2), times.size)
    values = lfilter([1.0], [1.0, -phi], shocks)
    span = max(float(times[-1] - times[0]), 1.0)
    values += level + level * rng.uniform(0, 0.1) * np.sin(
        2 * np.pi * (times - times[0]) / (span * rng.uniform(1, 4))
    )
    spikes = rng.random(times.size) < 0.01
    values[spikes] += noise * rng.uniform(3, 8, spikes.sum()) * METRIC_SPECS[name][3]
    return values, noise


def _apply(
    values: np.ndarray, times: np.ndarray, effect: _Effect, amount: float, versioned_new: bool
) -> None:
    if versioned_new:
        fraction = (times >= effect.start).astype(float)
    else:
        fraction = np.clip((times - effect.start) / max(effect.ramp_s, 1.0), 0.0, 1.0) * (
            times >= effect.start
        )
    if effect.decay_s > 0:  # retries, autoscaling or caches partly absorb the fault over time
        fraction *= np.exp(-np.clip(times - effect.start - effect.ramp_s, 0.0, None) / effect.decay_s)
    values += amount * fraction


def _strength(rng: np.random.Generator) -> float:
    return float(np.exp(rng.uniform(np.log(2), np.log(40))))


def _decay(rng: np.random.Generator) -> float:
    return float(rng.uniform(300, 1800)) if rng.random() < 0.2 else 0.0


def _clip(name: str, values: np.ndarray) -> np.ndarray:
    if name in ("eval_score", "retrieval_precision", "gpu_cache_usage", "cpu", "memory"):
        return np.clip(values, 0.0, 1.0)
    return np.clip(values, 0.0, None)


class ScenarioGenerator:
    """Reproducible incidents: `generate(i)` depends only on (seed, i)."""

    def __init__(self, seed: int = 7, no_culprit_rate: float = 0.15) -> None:
        self.seed = seed
        self.no_culprit_rate = no_culprit_rate

    def generate_many(self, count: int, start: int = 0) -> list[Case]:
        return [self.generate(i) for i in range(start, start + count)]

    def generate(self, number: int) -> Case:
        rng = np.random.default_rng([self.seed, number])
        edges = _topology(rng)
        services = sorted({s for edge in edges for s in edge})
        step = float(rng.choice([15, 30, 60, 60, 60, 300]))
        lookback = (
            float(rng.choice([1500, 3600, 7200, 10800])) if step < 300 else float(rng.choice([1500, 7200]))
        )
        detected = 1.79e9 + float(rng.integers(0, 10_000_000))
        post = float(rng.uniform(0, 600)) if rng.random() < 0.5 else 0.0
        times = np.arange(detected - lookback, detected + post + 1e-6, step)
        # Most symptoms alert within minutes; slow burns (quality drift, low traffic) take much longer.
        slow_detection = rng.random() < 0.2
        detection_delay = float(rng.uniform(60, min(5400 if slow_detection else 1200, lookback / 2)))
        onset = detected - detection_delay
        has_culprit = rng.random() >= self.no_culprit_rate
        changes: list[ChangeData] = []

        if has_culprit:
            culprit_service = str(rng.choice(services[:]))
            kind = str(rng.choice(KINDS_BY_SERVICE.get(culprit_service, DEFAULT_KINDS)))
            classes, weights = FAULT_CLASSES[kind]
            fault = str(rng.choice(classes, p=weights))
            delay = float(rng.uniform(0, 900 if kind in ("corpus", "model") else 180))
            if rng.random() < 0.12:  # caches expire, traffic shifts, a cron job first uses the change
                delay += float(rng.uniform(600, 3600))
            started = onset - delay
            duration = (
                float(rng.uniform(60, 900)) if kind in PROGRESSIVE_KINDS and rng.random() < 0.7 else 0.0
            )
            culprit = self._change(rng, "culprit", culprit_service, kind, started, duration)
            changes.append(culprit)
            effect = _Effect(
                culprit_service, fault, onset, max(duration - delay, 0.0), _strength(rng), _decay(rng)
            )
        else:
            culprit = None
            fault = str(rng.choice(["load", "errors", "latency"]))
            origin = "gateway" if fault == "load" else str(rng.choice(services))
            effect = _Effect(origin, fault, onset, float(rng.uniform(0, 600)), _strength(rng), _decay(rng))

        affected = _ancestors(edges, effect.service)
        if effect.fault == "load":
            affected = [(s, 0) for s in services if s == "gateway" or any(s == b for _, b in edges)]
        candidates = [(s, d) for s, d in affected if d > 0 or rng.random() < 0.5] or affected
        symptom_service, symptom_depth = candidates[int(rng.integers(0, len(candidates)))]
        metric_names = {s: _metrics_for(s, rng) for s in services}
        symptom_fault = "latency" if effect.fault == "load" else effect.fault
        wanted = _fault_metric(symptom_fault, metric_names[symptom_service])
        if not wanted:
            wanted = ["eval_score"]
        symptom_metric = wanted[0]
        if symptom_metric not in metric_names[symptom_service]:
            metric_names[symptom_service].append(symptom_metric)
        changes += self._distractors(
            rng, services, edges, symptom_service, detected, lookback, culprit, onset
        )
        series = self._series(rng, times, metric_names, affected, effect, culprit, changes, symptom_service)

        rng.shuffle(changes)  # type: ignore[arg-type]
        ids = [f"chg-{n}" for n in rng.permutation(1000)[: len(changes)]]
        culprit_id = None
        for change, new_id in zip(changes, ids, strict=True):
            if change is culprit:
                culprit_id = new_id
            change.id = new_id
        keep_topology = rng.random() >= 0.08
        return Case(
            incident_id=f"syn-{self.seed}-{number}",
            detected_at=detected,
            symptom_service=symptom_service if rng.random() >= 0.03 else None,
            symptom_metric=symptom_metric if rng.random() >= 0.08 else None,
            edges=edges if keep_topology else [],
            changes=changes,
            series=series,
            culprit_id=culprit_id,
            extra={"fault": effect.fault, "symptom_depth": symptom_depth},
        )

    def _change(
        self, rng: np.random.Generator, tag: str, service: str, kind: str, started: float, duration: float
    ) -> ChangeData:
        build = int(rng.integers(100, 999))
        return ChangeData(
            id=tag,
            service=service,
            kind=kind,
            started=started,
            completed=started + duration if duration > 0 or rng.random() < 0.5 else None,
            from_version=f"{kind}-{build}",
            to_version=f"{kind}-{build + 1}",
        )

    def _distractors(
        self,
        rng: np.random.Generator,
        services: list[str],
        edges: list[tuple[str, str]],
        symptom_service: str,
        detected: float,
        lookback: float,
        culprit: ChangeData | None,
        onset: float,
    ) -> list[ChangeData]:
        on_path = [s for s, _ in _ancestors(edges, symptom_service)] + [
            b for a, b in edges if a == symptom_service
        ]
        count = int(rng.choice(np.arange(0, 13), p=_DISTRACTOR_COUNTS))
        out: list[ChangeData] = []

        def add(service: str, started: float) -> None:
            kind = str(rng.choice(KINDS_BY_SERVICE.get(service, DEFAULT_KINDS)))
            duration = float(rng.uniform(30, 600)) if kind in PROGRESSIVE_KINDS else 0.0
            out.append(self._change(rng, f"d{len(out)}", service, kind, started, duration))

        for _ in range(count):
            service = str(rng.choice(on_path if rng.random() < 0.3 else services))
            started = detected - float(rng.uniform(-300 if rng.random() < 0.08 else 0, lookback + 1800))
            add(service, started)
        anchor = culprit.started if culprit else onset - 300
        if rng.random() < 0.3:
            add(str(rng.choice(services)), float(rng.uniform(anchor, detected)))
        if culprit is not None and rng.random() < 0.1:
            add(culprit.service, culprit.started + float(rng.uniform(-180, 180)))
        if rng.random() < 0.15:
            add(str(rng.choice(services)), onset + float(rng.uniform(-300, 300)))
        return out

    def _series(
        self,
        rng: np.random.Generator,
        times: np.ndarray,
        metric_names: dict[str, list[str]],
        affected: list[tuple[str, int]],
        effect: _Effect,
        culprit: ChangeData | None,
        changes: list[ChangeData],
        symptom_service: str,
    ) -> list[SeriesData]:
        depth_of = dict(affected)
        fault_metrics = set(
            _fault_metric(effect.fault, [m for names in metric_names.values() for m in names])
        )
        attenuation = {s: float(rng.uniform(0.4, 1.0)) ** d for s, d in affected}
        benign = {c.id: rng.random() for c in changes if c is not culprit}
        canary_for = {
            c.id
            for c in changes
            if c.kind in ("image", "model", "config", "prompt", "flag") and rng.random() < 0.3
        }
        out: list[SeriesData] = []
        # Some services export nothing at all (managed services, lambdas without dashboards).
        silent = {s for s in metric_names if s != symptom_service and rng.random() < 0.12}
        for service, names in metric_names.items():
            for name in names:
                drop = service in silent or rng.random() < (0.03 if service == symptom_service else 0.12)
                values, noise = _baseline(name, times, rng)
                sign = METRIC_SPECS[name][3]
                hit = service in depth_of and name in fault_metrics
                if (
                    effect.fault == "quality"
                    and hit
                    and service == effect.service
                    and service not in QUALITY_METRIC
                ):
                    hit = name == "eval_score"  # a prompt/corpus change shows in its own quality metric only
                if hit:
                    _apply(
                        values, times, effect, sign * effect.strength * noise * attenuation[service], False
                    )
                own_changes = [c for c in changes if c.service == service and c is not culprit]
                for change in own_changes:
                    roll = benign[change.id]
                    if change.kind == "scale" and roll < 0.6 and name in ("cpu", "latency_ms"):
                        bump = _Effect(service, "benign", change.started, 120.0, 0.0)
                        _apply(values, times, bump, -sign * rng.uniform(1, 6) * noise, False)
                    elif roll < 0.25:
                        bump = _Effect(service, "benign", change.started, 60.0, 0.0)
                        _apply(values, times, bump, rng.normal(0, 1.5) * noise, False)
                    elif roll > 0.95 and service not in depth_of:
                        bump = _Effect(service, "own-problem", change.started, 60.0, 0.0)
                        _apply(values, times, bump, sign * rng.uniform(3, 20) * noise, False)
                if not drop:
                    keep = rng.random(times.size) >= 0.03
                    out.append(SeriesData(name, service, None, sign, times[keep], _clip(name, values[keep])))
                for change in changes:
                    if (
                        change.id in canary_for
                        and change.service == service
                        and name
                        in ("error_rate", "latency_ms", "eval_score", "retrieval_precision", "ttft_ms")
                    ):
                        out += self._canary(
                            rng, times, name, change, change is culprit and hit, effect, noise, sign
                        )
        return out

    def _canary(
        self,
        rng: np.random.Generator,
        times: np.ndarray,
        name: str,
        change: ChangeData,
        broken: bool,
        effect: _Effect,
        noise: float,
        sign: float,
    ) -> list[SeriesData]:
        live = times >= change.started
        if live.sum() < 2:
            return []
        old, _ = _baseline(name, times, rng)
        new = old + rng.normal(0, noise, times.size)
        if broken:
            _apply(new, times, effect, sign * effect.strength * noise, True)
        else:
            new += rng.normal(0, 0.5) * noise
        return [
            SeriesData(name, change.service, change.from_version, sign, times[live], _clip(name, old[live])),
            SeriesData(name, change.service, change.to_version, sign, times[live], _clip(name, new[live])),
        ]


_DISTRACTOR_COUNTS = np.array([2, 4, 8, 10, 10, 9, 8, 7, 6, 5, 4, 3, 2], dtype=float)
_DISTRACTOR_COUNTS /= _DISTRACTOR_COUNTS.sum()
