"""Synthetic incidents for training: rolling updates seen through pods and versions.

Each incident has a call graph (AI applications or a randomly drawn microservice
shop), a health state per service that propagates from callees to callers, several
changes (rolling updates that replace pods, and changes applied at once), and either
one culprit whose new version is broken, or no culprit (a load surge, or a dependency
outside the change list failing).

What the telemetry shows is drawn independently of which change is the culprit:
per-service, per-version or per-pod series (or none), per-peer series on callers,
binomial error rates for low-traffic pods, noisy and seasonal baselines, unrelated
level shifts. Every rollout, harmless or not, shifts its fresh pods' CPU and memory
(up to tens of times) and warms up slowly; some harmless low-traffic rollouts never
report. Broken versions may fail loudly, slowly, intermittently (flapping), only for
their callers (crash-looping pods that never report, or idle pods), or after a delay.
Concurrent rollouts started within minutes and still rolling at detection are common.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from attribution.case import Case, ChangeData, SeriesData
from attribution.catalog import (
    AI_SERVICES,
    APP_EDGES,
    DEFAULT_KINDS,
    ERROR_NAMES,
    FAULT_FAMILIES,
    KINDS_BY_SERVICE,
    LATENCY_NAMES,
    LEAF_NAMES,
    POD_KINDS,
    QUALITY_NAMES,
    RESOURCE_NAMES,
    SHOP_NAMES,
    UNRELATED_EDGES,
)

FAMILIES = ("errors", "latency", "quality")
MAX_POINTS = 360
LOOKBACK_S = 7200.0  # backout lists changes from this far back (activities/context.py)...
EVIDENCE_LEAD_S = 600.0  # ...and reads evidence from this long before the earliest of them
_Curve = Callable[[np.ndarray], np.ndarray]


@dataclass(slots=True)
class _Service:
    name: str
    replicas: int
    telemetry: str  # service | version | pod | pod-unlabelled | none
    rps: float
    error_name: tuple[str, str] | None
    latency_name: str | None
    quality_names: tuple[str, ...]
    resources: tuple[str, ...]
    requests: bool
    base_error: float
    base_latency: float
    base_quality: float
    base_cpu: float
    base_memory: float
    noise: float  # relative noise of latency-like series


@dataclass(slots=True)
class _Change:
    change: ChangeData
    pods: bool
    labelled: bool  # telemetry versions of the service follow this change
    duration: float
    fresh_memory: float = 1.0
    fresh_cpu: float = 1.0
    warmup: float = 0.0
    warmup_s: float = 60.0
    quiet: bool = False  # harmless low-traffic rollout whose new pods never report
    canary: float = 1.0  # share of traffic the new version ends up with (< 1: a canary that stays)
    fault: str | None = None  # errors | latency | quality | silent | idle
    magnitude: float = 0.0
    delay: float = 0.0
    flap: float = 0.0  # period of an intermittent fault (0 = steady)

    def share_new(self, times: np.ndarray) -> np.ndarray:
        """Share of the service's traffic served by the new version."""
        if not self.pods:
            return (times >= self.change.started).astype(float)
        return self.canary * np.clip((times - self.change.started) / max(self.duration, 1.0), 0.0, 1.0)

    def fault_curve(self, times: np.ndarray) -> np.ndarray:
        active = (times >= self.change.started + self.delay).astype(float)
        if self.flap > 0:
            phase = np.floor((times - self.change.started - self.delay) / self.flap)
            active *= (phase % 2 == 0).astype(float)
        return self.magnitude * active


@dataclass(slots=True)
class _World:
    times: np.ndarray
    services: dict[str, _Service]
    edges: list[tuple[str, str]]
    changes: list[_Change]
    load: np.ndarray
    outside: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # no-change faults


def _layered_graph(rng: np.random.Generator) -> list[tuple[str, str]]:
    names = list(rng.choice(SHOP_NAMES, size=int(rng.integers(5, 12)), replace=False))
    leaves = list(rng.choice(LEAF_NAMES, size=int(rng.integers(1, 4)), replace=False))
    entry = str(rng.choice(["frontend", "web", "api-gateway", "edge"]))
    layers: list[list[str]] = [[entry]]
    remaining = names[:]
    while remaining:
        size = int(rng.integers(1, 4))
        layers.append([str(n) for n in remaining[:size]])
        remaining = remaining[size:]
    layers.append([str(n) for n in leaves])
    edges: list[tuple[str, str]] = []
    for depth in range(len(layers) - 1):
        below = [s for layer in layers[depth + 1 :] for s in layer]
        for caller in layers[depth]:
            direct = layers[depth + 1]
            for callee in rng.choice(direct, size=int(rng.integers(1, len(direct) + 1)), replace=False):
                edges.append((caller, str(callee)))
            if rng.random() < 0.4 and len(below) > len(direct):
                extra = str(rng.choice(below))
                if (caller, extra) not in edges:
                    edges.append((caller, extra))
    for layer in layers[1:]:
        for service in layer:
            if not any(callee == service for _, callee in edges):
                edges.append((str(rng.choice(layers[0])), service))
    return edges


def _topology(rng: np.random.Generator) -> list[tuple[str, str]]:
    if rng.random() < 0.45:
        edges = _layered_graph(rng)
    else:
        apps = [app for app in ("rag", "chat", "agent") if rng.random() < 0.55] or ["rag"]
        edges = []
        for app in [*apps, "auth"]:
            for edge in APP_EDGES[app]:
                if edge not in edges and (edge[0] == "gateway" or rng.random() < 0.9):
                    edges.append(edge)
    for index in rng.choice(len(UNRELATED_EDGES), size=int(rng.integers(0, 3)), replace=False):
        edges.extend(UNRELATED_EDGES[int(index)])
    return edges


def _order_callees_first(edges: list[tuple[str, str]], services: list[str]) -> list[str]:
    callees: dict[str, set[str]] = {s: set() for s in services}
    for caller, callee in edges:
        callees[caller].add(callee)
    done: list[str] = []
    seen: set[str] = set()

    def visit(node: str, path: set[str]) -> None:
        if node in seen or node in path:
            return
        path.add(node)
        for nxt in sorted(callees[node]):
            visit(nxt, path)
        path.discard(node)
        seen.add(node)
        done.append(node)

    for service in services:
        visit(service, set())
    return done


def _ancestors(edges: list[tuple[str, str]], service: str) -> dict[str, int]:
    found = {service: 0}
    frontier = [service]
    while frontier:
        nxt = []
        for node in frontier:
            for caller, callee in edges:
                if callee == node and caller not in found:
                    found[caller] = found[node] + 1
                    nxt.append(caller)
        frontier = nxt
    return found


def _descendants(edges: list[tuple[str, str]], service: str) -> set[str]:
    found = {service}
    frontier = [service]
    while frontier:
        nxt = [callee for caller, callee in edges if caller in frontier and callee not in found]
        found |= set(nxt)
        frontier = nxt
    return found - {service}


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
        names = sorted({s for edge in edges for s in edge})
        all_pods = rng.random() < 0.2  # no service-level series at all in this bundle
        services = {name: self._service(rng, name, all_pods) for name in names}
        entry_points = sorted({a for a, _ in edges} - {b for _, b in edges})

        step = float(rng.choice([10, 15, 30, 30, 60, 60, 60, 120, 300]))
        detection_delay = float(np.exp(rng.uniform(np.log(60), np.log(5400))))
        lookback = float(rng.choice([600, 900, 1200, 1800, 3600, 5400, 7200, 10800]))
        if rng.random() < 0.7:  # most bundles reach back past the onset; some start after it
            lookback = max(lookback, detection_delay + float(rng.uniform(300, 1800)))
        detected = 1.79e9 + float(rng.integers(0, 10_000_000))
        post = float(rng.uniform(0, 300)) if rng.random() < 0.3 else 0.0
        onset = detected - detection_delay

        has_culprit = rng.random() >= self.no_culprit_rate
        changes: list[_Change] = []
        load: _Curve = _flat
        outside: dict[str, dict[str, _Curve]] = {}
        if has_culprit:
            culprit_service = str(rng.choice(names))
            culprit = self._culprit(rng, services[culprit_service], onset)
            changes.append(culprit)
            origin = culprit_service
            fault_family = {"silent": "errors", "idle": "errors"}.get(
                culprit.fault or "", culprit.fault or "errors"
            )
        else:
            culprit = None
            story = str(rng.choice(["load", "dependency", "dependency"]))
            if story == "load":
                surge = float(np.exp(rng.uniform(np.log(1.5), np.log(5))))
                ramp = float(rng.uniform(30, 600))

                def load(times: np.ndarray) -> np.ndarray:
                    return 1 + (surge - 1) * np.clip((times - onset) / ramp, 0, 1)

                origin = str(rng.choice(entry_points)) if entry_points else str(rng.choice(names))
                fault_family = "latency"
            else:
                origin = str(rng.choice(names))
                fault_family = str(rng.choice(FAMILIES, p=[0.5, 0.35, 0.15]))
                curve = _outside_fault(rng, onset, fault_family)
                outside[origin] = {fault_family: curve}
                if rng.random() < 0.3:  # the failing dependency is not even in the telemetry
                    services[origin].telemetry = "none"

        ancestors = _ancestors(edges, origin)
        if fault_family == "latency" and not has_culprit and outside == {}:
            ancestors = {s: 0 for s in names if s in entry_points or rng.random() < 0.5} or {origin: 0}
        symptom_service = self._symptom_service(rng, ancestors, entry_points)
        symptom = services[symptom_service]
        if symptom.telemetry == "none" and rng.random() < 0.7:
            symptom.telemetry = "service"
        symptom_metric = _symptom_metric(rng, symptom, fault_family)

        changes += self._distractors(
            rng, services, edges, symptom_service, culprit, onset, detected, lookback
        )
        times = _frame(changes, detected, lookback, post, step)
        world = _World(
            times,
            services,
            edges,
            changes,
            load(times),
            {name: {f: curve(times) for f, curve in faults.items()} for name, faults in outside.items()},
        )
        series = _emit(rng, world)

        if rng.random() < 0.1:  # the alert fired on data the bundle does not carry
            series = [
                s
                for s in series
                if not (s.service == symptom_service and s.name == symptom_metric and s.peer is None)
            ]
        rng.shuffle(changes)  # type: ignore[arg-type]
        ids = rng.permutation(9000)[: len(changes)] + 1000
        for item, number_id in zip(changes, ids, strict=True):
            item.change.id = f"chg-{number_id}"
        keep_topology = rng.random() >= 0.06
        return Case(
            incident_id=f"gen-{self.seed}-{number}",
            detected_at=detected,
            symptom_service=symptom_service if rng.random() >= 0.03 else None,
            symptom_metric=symptom_metric if rng.random() >= 0.08 else None,
            edges=edges if keep_topology else [],
            changes=[item.change for item in changes],
            series=series,
            culprit_id=culprit.change.id if culprit else None,
            extra={"fault": culprit.fault if culprit else f"none:{fault_family}", "origin": origin},
        )

    # --- the parts of one incident --------------------------------------------------------
    def _service(self, rng: np.random.Generator, name: str, all_pods: bool) -> _Service:
        modes = ["service", "version", "pod", "pod-unlabelled", "none"]
        weights = [0.3, 0.2, 0.3, 0.05, 0.15] if not all_pods else [0.0, 0.25, 0.55, 0.05, 0.15]
        telemetry = str(rng.choice(modes, p=weights))
        quality = QUALITY_NAMES.get(name, ())
        if name not in AI_SERVICES and rng.random() < 0.05:
            quality = ("quality_score",)
        error_index = int(rng.integers(0, len(ERROR_NAMES)))
        return _Service(
            name=name,
            replicas=int(rng.integers(1, 7)),
            telemetry=telemetry,
            rps=float(np.exp(rng.uniform(np.log(0.2), np.log(400)))),
            error_name=ERROR_NAMES[error_index] if rng.random() < 0.9 else None,
            latency_name=str(rng.choice(LATENCY_NAMES)) if rng.random() < 0.85 else None,
            quality_names=tuple(q for q in quality if rng.random() < 0.75),
            resources=tuple(r for r in RESOURCE_NAMES if rng.random() < 0.6)
            + (("gpu_cache_usage",) if "llm" in name and rng.random() < 0.6 else ()),
            requests=rng.random() < 0.6,
            base_error=float(np.exp(rng.uniform(np.log(1e-4), np.log(0.03)))),
            base_latency=float(np.exp(rng.uniform(np.log(5), np.log(2000)))),
            base_quality=float(rng.uniform(0.6, 0.95)),
            base_cpu=float(rng.uniform(0.05, 0.6)),
            base_memory=float(rng.uniform(0.1, 0.7)),
            noise=float(rng.uniform(0.02, 0.15)),
        )

    def _new_change(
        self,
        rng: np.random.Generator,
        service: _Service,
        started: float,
        detected: float,
        labelled_taken: bool,
        allow_pods: bool = True,
    ) -> _Change:
        kinds = KINDS_BY_SERVICE.get(service.name, DEFAULT_KINDS)
        if not allow_pods:  # one rolling update per service at a time; others apply at once
            kinds = [k for k in kinds if k not in POD_KINDS] or ["config"]
        kind = str(rng.choice(kinds))
        pods = kind in POD_KINDS or (allow_pods and kind == "config" and rng.random() < 0.3)
        duration = float(np.exp(rng.uniform(np.log(60), np.log(1500)))) if pods else 0.0
        build = int(rng.integers(10, 99))
        style = int(rng.integers(0, 3))
        old, new = (
            (f"{service.name}:1.{build}.0", f"{service.name}:1.{build + 1}.0")
            if style == 0
            else (f"v{build}", f"v{build + 1}")
            if style == 1
            else (f"{kind}-{build}a", f"{kind}-{build}b")
        )
        finished = started + duration
        completed = finished if finished <= detected and rng.random() < 0.8 else None
        if not pods and rng.random() < 0.5:
            completed = started
        change = ChangeData("", service.name, kind, started, completed, old, new)
        labelled = (
            not labelled_taken
            and service.telemetry in ("version", "pod")
            and (pods or rng.random() < 0.4)  # an instant change relabels series (prompt or config version)
        )
        item = _Change(change, pods, labelled, duration)
        if pods and rng.random() < 0.2:
            item.canary = float(rng.uniform(0.1, 0.5))
            item.change.completed = None
        if pods:
            item.fresh_memory = float(np.exp(rng.uniform(0, np.log(30)))) if rng.random() < 0.8 else 1.0
            item.fresh_cpu = float(np.exp(rng.uniform(0, np.log(8)))) if rng.random() < 0.7 else 1.0
            item.warmup = float(rng.uniform(0.2, 5.0)) if rng.random() < 0.7 else 0.0
            item.warmup_s = float(rng.uniform(20, 300))
        return item

    def _culprit(self, rng: np.random.Generator, service: _Service, onset: float) -> _Change:
        delay = float(rng.uniform(0, 240)) if rng.random() < 0.85 else float(rng.uniform(600, 2400))
        item = self._new_change(rng, service, onset - delay, onset + 3600, False)
        families, weights = FAULT_FAMILIES[item.change.kind]
        fault = str(rng.choice(families, p=weights))
        if item.pods and service.telemetry in ("version", "pod", "pod-unlabelled") and rng.random() < 0.15:
            fault = str(rng.choice(["silent", "idle"]))
        if fault == "quality" and not service.quality_names and rng.random() < 0.5:
            fault = "errors"
        item.fault = fault
        item.delay = delay if delay > 600 else float(rng.uniform(0, min(delay, 120)))
        if item.pods:  # a rolling update reaches the symptom as its new pods take traffic
            item.delay = max(item.delay - float(rng.uniform(0, 0.3)) * item.duration, 0.0)
        strength = float(np.exp(rng.uniform(np.log(0.15), 0.0)))
        item.magnitude = {
            "errors": strength * 0.6,
            "latency": strength * 4.0,
            "quality": strength * 0.5,
            "silent": 0.5 + 0.5 * strength,
            "idle": 0.5 + 0.5 * strength,
        }[fault]
        item.flap = float(rng.uniform(120, 900)) if rng.random() < 0.1 else 0.0
        return item

    def _symptom_service(
        self, rng: np.random.Generator, ancestors: dict[str, int], entry_points: list[str]
    ) -> str:
        entries = [s for s in ancestors if s in entry_points]
        if entries and rng.random() < 0.55:
            return str(rng.choice(entries))
        return str(rng.choice(sorted(ancestors)))

    def _distractors(
        self,
        rng: np.random.Generator,
        services: dict[str, _Service],
        edges: list[tuple[str, str]],
        symptom_service: str,
        culprit: _Change | None,
        onset: float,
        detected: float,
        lookback: float,
    ) -> list[_Change]:
        names = sorted(services)
        on_path = sorted(_descendants(edges, symptom_service) | {symptom_service})
        labelled = {culprit.change.service} if culprit and culprit.labelled else set()
        rolling = {culprit.change.service} if culprit and culprit.pods else set()
        anchor = culprit.change.started if culprit else onset - float(rng.uniform(0, 600))
        out: list[_Change] = []
        burst = rng.random() < 0.4
        count = int(rng.integers(3, 11)) if burst else int(rng.integers(1, 9))
        for _ in range(count):
            service = services[str(rng.choice(on_path if rng.random() < 0.5 else names))]
            if burst:
                started = anchor + float(rng.uniform(-420, 420))
            elif rng.random() < 0.1:
                started = detected + float(rng.uniform(0, 300))
            else:
                started = detected - float(rng.uniform(0, max(lookback, detected - onset) + 1800))
            item = self._new_change(
                rng, service, started, detected, service.name in labelled, service.name not in rolling
            )
            if item.labelled:
                labelled.add(service.name)
            if item.pods:
                rolling.add(service.name)
            if (
                item.pods
                and service.telemetry in ("version", "pod", "pod-unlabelled")
                and rng.random() < 0.15
            ):
                item.quiet = True  # low traffic: its new pods never report
            out.append(item)
        if culprit is not None and rng.random() < 0.08:  # another change on the culprit's own service
            service = services[culprit.change.service]
            started = culprit.change.started + float(rng.uniform(-300, 300))
            item = self._new_change(rng, service, started, detected, True, service.name not in rolling)
            item.labelled = False
            out.append(item)
        return out


def _symptom_metric(rng: np.random.Generator, service: _Service, family: str) -> str:
    """The metric the alert fired on: mostly one the fault moves (the service gains it if it lacks it).

    Now and then another family's metric, which the fault may leave flat (an alert on a
    composite signal, a series the bundle does not carry).
    """
    if rng.random() < 0.85:
        if family == "quality":
            if not service.quality_names:
                service.quality_names = ("eval_score",)
            return service.quality_names[0]
        if family == "latency":
            service.latency_name = service.latency_name or "latency_ms"
            return service.latency_name
        service.error_name = service.error_name or ("error_rate", "rate")
        return service.error_name[0]
    if family == "quality" and service.quality_names:
        return service.quality_names[0]
    if family == "latency" and service.latency_name:
        return service.latency_name
    if service.error_name:
        return service.error_name[0]
    if service.latency_name:
        return service.latency_name
    service.error_name = ("error_rate", "rate")
    return "error_rate"


def _outside_fault(rng: np.random.Generator, onset: float, family: str) -> _Curve:
    magnitude = (
        float(np.exp(rng.uniform(np.log(0.15), 0.0)))
        * {"errors": 0.6, "latency": 4.0, "quality": 0.4}[family]
    )
    ramp = float(rng.uniform(10, 300))
    period = float(rng.uniform(120, 900)) if rng.random() < 0.2 else 0.0  # flapping

    def curve(times: np.ndarray) -> np.ndarray:
        out = magnitude * np.clip((times - onset) / ramp, 0, 1)
        if period:
            out *= (np.floor(np.clip(times - onset, 0, None) / period) % 2 == 0).astype(float)
        return out

    return curve


def _flat(times: np.ndarray) -> np.ndarray:
    return np.ones(times.size)


def _frame(changes: list[_Change], detected: float, lookback: float, post: float, step: float) -> np.ndarray:
    """The bundle's time grid, framed the way backout's context collection frames it.

    Changes are listed from a 2-hour lookback (an older one is clamped inside it) and evidence
    starts EVIDENCE_LEAD_S before the earliest of them, so every listed change has pre-change
    data; a drawn lookback reaching further back is kept.
    """
    for item in changes:
        if item.change.started < detected - LOOKBACK_S + 30:
            item.change.started = detected - LOOKBACK_S + 30
    earliest = min((c.change.started for c in changes if c.change.started <= detected), default=detected)
    begin = max(detected - LOOKBACK_S, min(detected - lookback, earliest - EVIDENCE_LEAD_S))
    step = max(step, (detected + post - begin) / MAX_POINTS)
    return np.arange(begin, detected + post + 1e-6, step)


# --- the health state and what the telemetry shows of it ----------------------------------------
@dataclass(slots=True)
class _State:
    """Damage per family of one service: what every pod inherits, and what only the new version adds."""

    inherited: dict[str, np.ndarray]
    own_new: dict[str, np.ndarray]
    own_all: dict[str, np.ndarray]
    rollout: _Change | None  # the change the service's versions follow
    silent_share: np.ndarray  # share of traffic lost to a silent or idle new version


def _emit(rng: np.random.Generator, world: _World) -> list[SeriesData]:
    states = _propagate(world, rng)
    out: list[SeriesData] = []
    for name in sorted(world.services):
        service = world.services[name]
        state = states[name]
        out += _service_series(rng, world, service, state)
    out += _peer_series(rng, world, states)
    _benign_shifts(rng, out, world.times)
    return out


def _propagate(world: _World, rng: np.random.Generator) -> dict[str, _State]:
    """Health damage per service, callees first: each caller inherits what its callees show it."""
    states: dict[str, _State] = {}
    names = sorted(world.services)
    callees: dict[str, list[str]] = {s: [] for s in names}
    for caller, callee in world.edges:
        callees[caller].append(callee)
    zeros = np.zeros(world.times.size)
    by_service: dict[str, list[_Change]] = {}
    for item in world.changes:
        by_service.setdefault(item.change.service, []).append(item)
    for service in _order_callees_first(world.edges, names):
        mine = by_service.get(service, [])
        rollout = next((c for c in mine if c.labelled), None) or next((c for c in mine if c.pods), None)
        own_new = {f: zeros.copy() for f in FAMILIES}
        own_all = {f: zeros.copy() for f in FAMILIES}
        silent_share = zeros.copy()
        for item in mine:
            if item.fault is None:
                continue
            curve = item.fault_curve(world.times)
            if item.fault in ("silent", "idle"):
                lost = item.share_new(world.times) * (curve > 0)
                silent_share = np.maximum(silent_share, lost)
            elif item is rollout:
                own_new[item.fault] += curve
            else:
                own_all[item.fault] += curve * item.share_new(world.times)
        for family, curve in world.outside.get(service, {}).items():
            own_all[family] += curve
        inherited = {f: zeros.copy() for f in FAMILIES}
        for callee in callees[service]:
            callee_state = states[callee]
            visible = _visible(callee_state, world.times)
            factors = {
                "errors": rng.uniform(0.5, 1.0),
                "latency": rng.uniform(0.2, 0.9),
                "quality": rng.uniform(0.5, 1.0),
            }
            for family in FAMILIES:
                inherited[family] += factors[family] * visible[family]
            # Calls that land on a silent new version fail for the caller.
            inherited["errors"] += factors["errors"] * callee_state.silent_share * 0.9
        load_damage = np.clip(world.load - 1.0, 0, None)
        if load_damage.any():
            inherited["latency"] += load_damage * rng.uniform(0.3, 1.5)
            inherited["errors"] += load_damage * rng.uniform(0.0, 0.02)
        states[service] = _State(inherited, own_new, own_all, rollout, silent_share)
    return states


def _visible(state: _State, times: np.ndarray) -> dict[str, np.ndarray]:
    """The service's damage as its callers experience it (the new version weighted by its share)."""
    share = state.rollout.share_new(times) if state.rollout is not None else np.zeros(times.size)
    return {f: state.inherited[f] + state.own_all[f] + share * state.own_new[f] for f in FAMILIES}


@dataclass(slots=True)
class _Instance:
    """A pod, a version or the whole service: what one series reports on."""

    version: str | None
    pod: str | None
    start: float
    stop: float
    new: bool
    share: np.ndarray  # share of the service's traffic it serves
    fresh_since: float | None  # when a fresh pod started (warm-up, resource shift), else None


def _instances(rng: np.random.Generator, world: _World, service: _Service, state: _State) -> list[_Instance]:
    times = world.times
    rollout = state.rollout
    begin, end = float(times[0]) - 1, float(times[-1]) + 1
    whole = [_Instance(None, None, begin, end, False, np.ones(times.size), None)]
    if service.telemetry == "service":
        return whole
    if rollout is None or not (rollout.pods or rollout.labelled):
        if service.telemetry in ("pod", "pod-unlabelled"):
            return [
                _Instance(
                    None,
                    f"{service.name}-{i}",
                    begin,
                    end,
                    False,
                    np.full(times.size, 1 / service.replicas),
                    None,
                )
                for i in range(service.replicas)
            ]
        return whole
    change = rollout.change
    share_new = rollout.share_new(times)
    label_old = change.from_version if rollout.labelled else None
    label_new = change.to_version if rollout.labelled else None
    if service.telemetry == "version" or not rollout.pods:
        if service.telemetry == "pod-unlabelled":
            return whole
        return [
            _Instance(
                label_old,
                None,
                begin,
                change.started if not rollout.pods else end,
                False,
                1 - share_new,
                None,
            ),
            _Instance(
                label_new,
                None,
                change.started,
                end,
                True,
                share_new,
                change.started if rollout.pods else None,
            ),
        ]
    pods: list[_Instance] = []
    n = service.replicas
    labelled = service.telemetry == "pod"
    replaced = n if rollout.canary >= 1 else max(1, round(rollout.canary * n))
    for i in range(n):
        swap = change.started + (i + 0.5) * rollout.duration / n if i < replaced else end + 1
        old_share = np.where(times < swap, 1.0 / n, 0.0)
        new_share = np.where(times >= swap, 1.0 / n, 0.0)
        suffix = "".join(rng.choice(list("abcdefghjkmnpqrstvwxz"), size=5))
        pods.append(
            _Instance(
                label_old if labelled else None,
                f"{service.name}-old-{suffix}",
                begin,
                swap + 20,
                False,
                old_share,
                None,
            )
        )
        if i < replaced:
            pods.append(
                _Instance(
                    label_new if labelled else None,
                    f"{service.name}-{suffix}x",
                    swap,
                    end,
                    True,
                    new_share,
                    swap,
                )
            )
    return pods


def _service_series(
    rng: np.random.Generator, world: _World, service: _Service, state: _State
) -> list[SeriesData]:
    if service.telemetry == "none":
        return []
    times = world.times
    step = float(times[1] - times[0]) if times.size > 1 else 60.0
    season = 1 + float(rng.uniform(0, 0.25)) * np.sin(
        2 * np.pi * (times / float(rng.uniform(1800, 14400))) + rng.uniform(0, 6.3)
    )
    traffic = service.rps * season * world.load
    rollout = state.rollout
    out: list[SeriesData] = []
    for instance in _instances(rng, world, service, state):
        live = (times >= instance.start) & (times < instance.stop)
        if instance.new and rollout is not None and (rollout.quiet or rollout.fault == "silent"):
            continue  # a low-traffic rollout that never reports, or a crash-looping version
        if live.sum() < 1:
            continue
        sparse = instance.new and instance.pod is not None and rng.random() < 0.2
        keep = live & (rng.random(times.size) >= (0.6 if sparse else 0.02))
        if keep.sum() < 1:
            continue
        t = times[keep]
        share = (
            instance.share[keep]
            if instance.pod is not None or instance.version is not None
            else np.ones(t.size)
        )
        idle = instance.new and rollout is not None and rollout.fault == "idle"
        requests = traffic[keep] * share * (0.0 if idle else 1.0)
        if idle:  # its pods report that they serve nothing, and nothing else
            out.append(
                SeriesData(
                    "requests",
                    service.name,
                    instance.version,
                    1.0,
                    t,
                    np.round(requests * step) / step,
                    pod=instance.pod,
                )
            )
            continue
        damage = _damage(state, instance, times)
        age = t - instance.fresh_since if instance.fresh_since is not None else None
        out += _health(rng, service, instance, t, keep, damage, requests, step, age, rollout)
        out += _resources(rng, service, instance, t, world.load[keep], age, rollout)
        if service.requests:
            noisy = requests * np.exp(rng.normal(0, 0.05, t.size))
            out.append(
                SeriesData("requests", service.name, instance.version, 1.0, t, noisy, pod=instance.pod)
            )
    return out


def _damage(state: _State, instance: _Instance, times: np.ndarray) -> dict[str, np.ndarray]:
    rollout = state.rollout
    if rollout is None:
        return {f: state.inherited[f] + state.own_all[f] for f in FAMILIES}
    if instance.version is None and instance.pod is None:
        share = rollout.share_new(times)
        return {f: state.inherited[f] + state.own_all[f] + share * state.own_new[f] for f in FAMILIES}
    new = 1.0 if instance.new else 0.0
    return {f: state.inherited[f] + state.own_all[f] + new * state.own_new[f] for f in FAMILIES}


def _ar_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    phi = float(rng.uniform(0.0, 0.8))
    return np.asarray(lfilter([1.0], [1.0, -phi], rng.normal(0.0, scale * np.sqrt(1 - phi**2), size)))


def _health(
    rng: np.random.Generator,
    service: _Service,
    instance: _Instance,
    t: np.ndarray,
    keep: np.ndarray,
    damage: dict[str, np.ndarray],
    requests: np.ndarray,
    step: float,
    age: np.ndarray | None,
    rollout: _Change | None,
) -> list[SeriesData]:
    out: list[SeriesData] = []
    version, pod = instance.version, instance.pod
    if service.error_name is not None:
        name, form = service.error_name
        probability = np.clip(service.base_error + damage["errors"][keep], 0.0, 1.0)
        counts = np.maximum(requests * step, 0.0)
        calls = np.maximum(np.round(counts), 1).astype(np.int64)
        failures = rng.binomial(calls, probability)
        rate = failures / calls
        rate = np.where(counts < 0.5, probability * rng.uniform(0, 2, t.size), rate)
        values = {"rate": rate, "success": 1 - rate, "percent": 100 * (1 - rate)}[form]
        bad = "up" if form == "rate" else "down"
        out.append(SeriesData(name, service.name, version, 1.0 if bad == "up" else -1.0, t, values, pod=pod))
    if service.latency_name is not None:
        latency = (
            service.base_latency
            * (1 + damage["latency"][keep])
            * np.exp(_ar_noise(rng, t.size, service.noise))
        )
        if age is not None and rollout is not None and rollout.warmup > 0:
            latency *= 1 + rollout.warmup * np.exp(-np.clip(age, 0, None) / rollout.warmup_s)
        spikes = rng.random(t.size) < 0.01
        latency[spikes] *= rng.uniform(1.5, 4, spikes.sum())
        unit = 1e-3 if service.latency_name.endswith("_seconds") else 1.0
        out.append(SeriesData(service.latency_name, service.name, version, 1.0, t, latency * unit, pod=pod))
    for index, quality_name in enumerate(service.quality_names):
        noise = _ar_noise(rng, t.size, float(rng.uniform(0.005, 0.03)))
        drop = damage["quality"][keep]
        if quality_name == "hallucination_rate":
            values = np.clip(0.05 + 0.6 * drop + np.abs(noise), 0, 1)
            out.append(SeriesData(quality_name, service.name, version, 1.0, t, values, pod=pod))
        else:
            values = np.clip(service.base_quality - (0.8 + 0.2 * index) * drop + noise, 0, 1)
            out.append(SeriesData(quality_name, service.name, version, -1.0, t, values, pod=pod))
    return out


def _resources(
    rng: np.random.Generator,
    service: _Service,
    instance: _Instance,
    t: np.ndarray,
    load: np.ndarray,
    age: np.ndarray | None,
    rollout: _Change | None,
) -> list[SeriesData]:
    out: list[SeriesData] = []
    fresh = instance.new and rollout is not None and rollout.pods
    for name in service.resources:
        noise = np.exp(_ar_noise(rng, t.size, 0.05))
        if name == "memory":
            values = service.base_memory * noise * (rollout.fresh_memory if fresh and rollout else 1.0)
        elif name == "cpu":
            boost = 1.0
            if fresh and rollout is not None and age is not None:
                boost = rollout.fresh_cpu * (1 + 2 * np.exp(-np.clip(age, 0, None) / 120.0))
            values = service.base_cpu * load * noise * boost
        else:
            values = np.clip(service.base_memory * load * noise, 0, 1)
        out.append(SeriesData(name, service.name, instance.version, 1.0, t, values, pod=instance.pod))
    return out


def _peer_series(rng: np.random.Generator, world: _World, states: dict[str, _State]) -> list[SeriesData]:
    """Client-side series per call edge (a service mesh's view), in some bundles."""
    if rng.random() >= 0.25:
        return []
    times = world.times
    step = float(times[1] - times[0]) if times.size > 1 else 60.0
    out: list[SeriesData] = []
    for caller, callee in world.edges:
        if world.services[caller].telemetry == "none" and rng.random() < 0.5:
            continue
        state = states[callee]
        visible = _visible(state, times)
        callee_service = world.services[callee]
        probability = np.clip(callee_service.base_error + visible["errors"] + 0.9 * state.silent_share, 0, 1)
        calls = np.maximum(np.round(callee_service.rps * step * 0.5), 1).astype(np.int64)
        rate = rng.binomial(calls, probability, times.size) / calls
        out.append(SeriesData("error_rate", caller, None, 1.0, times, rate, peer=callee))
        latency = (
            callee_service.base_latency
            * 1.1
            * (1 + visible["latency"])
            * np.exp(_ar_noise(rng, times.size, 0.06))
        )
        out.append(SeriesData("latency_ms", caller, None, 1.0, times, latency, peer=callee))
    return out


def _benign_shifts(rng: np.random.Generator, series: list[SeriesData], times: np.ndarray) -> None:
    """Unrelated level shifts (a cron job, a cache flush, a neighbour): noisy baselines."""
    if not series or rng.random() >= 0.35:
        return
    for index in rng.choice(len(series), size=min(len(series), int(rng.integers(1, 4))), replace=False):
        item = series[int(index)]
        if item.values.size < 4:
            continue
        at = float(rng.uniform(times[0], times[-1]))
        size = float(rng.uniform(0.1, 0.8)) * (abs(float(np.median(item.values))) + 1e-3)
        sign = 1.0 if rng.random() < 0.6 else -1.0
        item.values = item.values + sign * item.bad_sign * size * (item.times >= at)
