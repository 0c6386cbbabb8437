"""What each pod's requests experience, per time step: error probability, latency, quality.

Services are simulated callees first, so a caller's requests carry what its callees
did to them (errors leak back through retries and fallbacks, latency adds up along
synchronous calls, a worse retrieval makes a worse answer). Every array exists twice:
`full` (with the incident: the culprit's fault, a failing dependency, a load surge)
and `clean` (everything else, including all the harmless nuisance), so a series can
be emitted flat on purpose and a test can check the symptom was really there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from attribution.nuisance.rollout import Plan, Pod
from attribution.nuisance.topology import Service, Topology

QUALITY_TRANSFER = 0.8
SILENT_MODES = ("never_reports", "idle")


@dataclass
class Fault:
    """The injected cause: on a change's exposed traffic, or on a whole service (external)."""

    service: str
    mode: str  # errors | latency | ttft | quality | never_reports | idle
    magnitude: float
    change_index: int | None
    onset: float
    creep: bool = False
    flap_period: float = 0.0
    flap_duty: float = 1.0
    flap_phase: float = 0.0

    def gate(self, t: np.ndarray) -> np.ndarray:
        if self.creep:
            span = max(-self.onset, 60.0)
            gate = np.clip((t - self.onset) / span, 0.0, 1.0)
        else:
            gate = (t >= self.onset).astype(float)
        if self.flap_period > 0:
            phase = np.mod(t - self.onset + self.flap_phase, self.flap_period)
            gate = gate * (phase < self.flap_duty * self.flap_period)
        return gate


@dataclass
class ChangeNuisance:
    """What a change does that is not a fault: every rollout has some of it, culprit or not."""

    latency_shift: float = 0.0
    quality_shift: float = 0.0
    silent: str | None = None  # "exporter" (new version's metrics broken) | "idle" (canary at weight 0)


def _empty() -> np.ndarray:
    return np.zeros(0)


@dataclass
class Cohort:
    """Requests of one pod under one version label."""

    service: str
    pod: Pod
    label: str
    weight: np.ndarray
    affected_by: dict[int, np.ndarray] = field(default_factory=dict)
    reports: bool = True
    idle: bool = False
    broken: np.ndarray = field(default_factory=_empty)
    err: np.ndarray = field(default_factory=_empty)
    err_clean: np.ndarray = field(default_factory=_empty)
    lat: np.ndarray = field(default_factory=_empty)
    lat_clean: np.ndarray = field(default_factory=_empty)
    ttft: np.ndarray = field(default_factory=_empty)  # language-model servers only
    ttft_clean: np.ndarray = field(default_factory=_empty)
    dq: np.ndarray = field(default_factory=_empty)
    dq_clean: np.ndarray = field(default_factory=_empty)


@dataclass
class ServiceState:
    service: Service
    load: np.ndarray
    load_clean: np.ndarray
    util: np.ndarray
    cohorts: list[Cohort]
    extra_err: np.ndarray
    dev_err: np.ndarray
    dev_err_clean: np.ndarray
    dev_lat: np.ndarray
    dev_lat_clean: np.ndarray
    dq: np.ndarray
    dq_clean: np.ndarray


@dataclass
class World:
    topology: Topology
    grid: np.ndarray
    step: float
    pods: dict[str, list[Pod]]
    plans: dict[str, list[Plan]]
    labelled: dict[str, Plan]
    nuisance: dict[int, ChangeNuisance]
    faults: list[Fault]
    load_clean: np.ndarray
    load_full: np.ndarray
    noise_sd: float
    error_bursts: float


def ar1(rng: np.random.Generator, size: int, sd: float, rho: float = 0.9) -> np.ndarray:
    """Stationary AR(1) noise with marginal standard deviation `sd`."""
    shocks = rng.normal(0.0, sd * np.sqrt(1 - rho**2), size=size)
    out = np.empty(size)
    out[0] = rng.normal(0.0, sd)
    for index in range(1, size):
        out[index] = rho * out[index - 1] + shocks[index]
    return out


def either(*probabilities: np.ndarray) -> np.ndarray:
    """A request fails if any independent cause fails it; a negative part is noise below baseline."""
    survive = np.ones_like(probabilities[0], dtype=float)
    below = np.zeros_like(survive)
    for part in probabilities:
        survive = survive * (1.0 - np.clip(part, 0.0, 1.0))
        below = below + np.minimum(part, 0.0)
    return np.clip(1.0 - survive + below, 0.0, 1.0)


def _warm(pod: Pod, t: np.ndarray, factor: float) -> np.ndarray:
    """Latency multiplier of a fresh pod: cold caches, JIT, lazy connections."""
    if pod.change_index is None and pod.created < -1e6:
        return np.ones_like(t)
    age = np.maximum(t - pod.ready, 0.0)
    return 1.0 + (factor - 1.0) * np.exp(-age / max(pod.warmup_s, 1.0))


def _cohorts(world: World, service: Service) -> list[Cohort]:
    t = world.grid
    pods = world.pods[service.name]
    serving = np.array([pod.serving(t) for pod in pods], dtype=float)
    count = np.maximum(serving.sum(axis=0), 1.0)
    plan = world.labelled.get(service.name)
    cohorts: list[Cohort] = []
    if plan is not None and plan.style in ("instant", "ramp"):
        share = plan.exposure(t)
        for index, pod in enumerate(pods):
            base = serving[index] / count
            cohorts.append(Cohort(service.name, pod, plan.old_label, base * (1 - share)))
            cohorts.append(Cohort(service.name, pod, plan.new_label, base * share))
    elif plan is not None and plan.style == "canary":
        is_new = np.array([pod.change_index == plan.change_index for pod in pods])
        new_count = serving[is_new].sum(axis=0) if is_new.any() else np.zeros_like(t)
        old_count = serving[~is_new].sum(axis=0) if (~is_new).any() else np.zeros_like(t)
        share = np.where(new_count > 0, plan.exposure(t), 0.0)
        share = np.where(old_count == 0, np.where(new_count > 0, 1.0, 0.0), share)
        for index, pod in enumerate(pods):
            if is_new[index]:
                weight = serving[index] * share / np.maximum(new_count, 1.0)
            else:
                weight = serving[index] * (1 - share) / np.maximum(old_count, 1.0)
            cohorts.append(Cohort(service.name, pod, pod.label, weight))
    else:
        for index, pod in enumerate(pods):
            cohorts.append(Cohort(service.name, pod, pod.label, serving[index] / count))
    for cohort in cohorts:
        for plan_on_service in world.plans.get(service.name, []):
            cohort.affected_by[plan_on_service.change_index] = _affected(plan_on_service, cohort, t)
    return cohorts


def _affected(plan: Plan, cohort: Cohort, t: np.ndarray) -> np.ndarray:
    """Share of this cohort's requests that run the changed behaviour."""
    if plan.labelled:
        return np.full_like(t, 1.0 if cohort.label == plan.new_label else 0.0)
    if plan.style in ("rolling", "canary", "restart", "scale"):
        return np.full_like(t, 1.0 if cohort.pod.change_index == plan.change_index else 0.0)
    return plan.exposure(t)


def _bursts(rng: np.random.Generator, t: np.ndarray, chance: float) -> np.ndarray:
    """Client-error bursts unrelated to any change (a bad batch client, a scanner)."""
    extra = np.zeros_like(t)
    if rng.random() >= chance:
        return extra
    for _ in range(int(rng.integers(1, 4))):
        start = float(rng.uniform(t[0], t[-1]))
        length = float(rng.uniform(45, 240))
        extra += np.where((t >= start) & (t < start + length), float(rng.uniform(0.01, 0.08)), 0.0)
    return extra


def simulate(world: World, rng: np.random.Generator) -> dict[str, ServiceState]:
    states: dict[str, ServiceState] = {}
    for name in world.topology.bottom_up():
        states[name] = _simulate_service(world, world.topology.services[name], states, rng)
    return states


def _simulate_service(
    world: World, service: Service, below: dict[str, ServiceState], rng: np.random.Generator
) -> ServiceState:
    t = world.grid
    size = t.size
    wobble = np.exp(ar1(rng, size, 0.04, 0.95))
    load_clean = world.load_clean * wobble
    load = world.load_full * wobble
    pods = world.pods[service.name]
    serving = np.array([pod.serving(t) for pod in pods], dtype=float).sum(axis=0)
    capacity = np.maximum(serving, 1.0) / service.replicas
    util = service.utilisation * load / capacity
    util_clean = service.utilisation * load_clean / capacity

    def queueing(u: np.ndarray) -> np.ndarray:
        return (1 - service.utilisation) / (1 - np.clip(u, 0.0, 0.93))

    def saturation(u: np.ndarray) -> np.ndarray:
        """Load shedding (429/503) once the pods run out of headroom."""
        return np.clip((u - 0.9) * 1.5, 0.0, 0.35)

    latency_noise = np.exp(ar1(rng, size, world.noise_sd, 0.85))
    error_noise = np.exp(ar1(rng, size, 0.25, 0.8))
    propagated_err = np.zeros(size)
    propagated_err_clean = np.zeros(size)
    propagated_lat = np.zeros(size)
    propagated_lat_clean = np.zeros(size)
    propagated_dq = np.zeros(size)
    propagated_dq_clean = np.zeros(size)
    for edge in world.topology.callees(service.name):
        callee = below[edge.callee]
        propagated_err += edge.fraction * edge.error_leak * callee.dev_err
        propagated_err_clean += edge.fraction * edge.error_leak * callee.dev_err_clean
        propagated_lat += edge.fraction * edge.latency_weight * callee.dev_lat
        propagated_lat_clean += edge.fraction * edge.latency_weight * callee.dev_lat_clean
        propagated_dq += edge.fraction * QUALITY_TRANSFER * callee.dq
        propagated_dq_clean += edge.fraction * QUALITY_TRANSFER * callee.dq_clean

    cohorts = _cohorts(world, service)
    own_faults = [fault for fault in world.faults if fault.service == service.name]
    for cohort in cohorts:
        pod = cohort.pod
        warm = _warm(pod, t, pod.warmup_factor)
        blip = np.zeros(size)
        if pod.change_index is not None or pod.created > -1e6:
            fresh = (t >= pod.ready) & (t < pod.ready + 30.0)
            blip = np.where(fresh, min(0.003 * pod.warmup_factor, 0.012), 0.0)
        shift = np.ones(size)
        dq_own = np.zeros(size)
        for index, affected in cohort.affected_by.items():
            nuisance = world.nuisance.get(index)
            if nuisance is None:
                continue
            shift *= 1.0 + nuisance.latency_shift * affected
            dq_own += nuisance.quality_shift * affected
            if nuisance.silent == "exporter" and affected.max() >= 1.0:
                cohort.reports = False
            if nuisance.silent == "idle" and affected.max() >= 1.0:
                cohort.idle = True
        base_err = service.error_base * error_noise + blip
        cohort.err_clean = either(base_err, saturation(util_clean), propagated_err_clean)
        cohort.err = either(base_err, saturation(util), propagated_err)
        base_lat = service.latency_ms * latency_noise * warm * shift
        # Past the client timeout a request is an error, not a slower success.
        cohort.lat_clean = np.minimum(
            base_lat * queueing(util_clean) + propagated_lat_clean, service.timeout_ms
        )
        cohort.lat = np.minimum(base_lat * queueing(util) + propagated_lat, service.timeout_ms)
        cohort.dq_clean = dq_own + propagated_dq_clean
        cohort.dq = dq_own + propagated_dq
        if service.role == "llm":
            ttft_warm = _warm(pod, t, 1.0 + 2.5 * (pod.warmup_factor - 1.0))
            pressure = 1.0 + 1.5 * np.clip(util - 0.5, 0.0, None)
            pressure_clean = 1.0 + 1.5 * np.clip(util_clean - 0.5, 0.0, None)
            cohort.ttft_clean = service.ttft_ms * latency_noise * ttft_warm * shift * pressure_clean
            cohort.ttft = service.ttft_ms * latency_noise * ttft_warm * shift * pressure
        broken = np.zeros(size, dtype=bool)
        for fault in own_faults:
            exposed = fault.gate(t)
            if fault.change_index is not None:
                exposed = exposed * cohort.affected_by.get(fault.change_index, np.zeros(size))
            broken |= _apply(fault, cohort, exposed, service)
        cohort.broken = broken
    dev = _deviation(service, cohorts)
    return ServiceState(
        service=service,
        load=load,
        load_clean=load_clean,
        util=util,
        cohorts=cohorts,
        extra_err=_bursts(rng, t, world.error_bursts),
        dev_err=dev[0],
        dev_err_clean=dev[1],
        dev_lat=dev[2],
        dev_lat_clean=dev[3],
        dq=dev[4],
        dq_clean=dev[5],
    )


def _apply(fault: Fault, cohort: Cohort, exposed: np.ndarray, service: Service) -> np.ndarray:
    if fault.mode == "errors":
        cohort.err = either(cohort.err, fault.magnitude * exposed)
    elif fault.mode == "latency":
        cohort.lat = cohort.lat * (1.0 + (fault.magnitude - 1.0) * exposed)
    elif fault.mode == "ttft":
        if cohort.ttft.size:
            before = cohort.ttft
            cohort.ttft = cohort.ttft * (1.0 + (fault.magnitude - 1.0) * exposed)
            cohort.lat = cohort.lat + (cohort.ttft - before)
        else:
            cohort.lat = cohort.lat * (1.0 + (fault.magnitude - 1.0) * exposed)
    elif fault.mode == "quality":
        cohort.dq = cohort.dq - fault.magnitude * exposed
    elif fault.mode in SILENT_MODES:
        broken = exposed >= 0.5
        if broken.any():
            if fault.mode == "never_reports":
                cohort.reports = False
            else:
                cohort.idle = True
        return broken
    return np.zeros_like(exposed, dtype=bool)


def _deviation(service: Service, cohorts: list[Cohort]) -> tuple[np.ndarray, ...]:
    """What callers see: the request-weighted departure from this service's healthy baseline."""
    weights = np.array([cohort.weight for cohort in cohorts])
    total = np.maximum(weights.sum(axis=0), 1e-9)

    def mix(values: list[np.ndarray]) -> np.ndarray:
        return (weights * np.array(values)).sum(axis=0) / total

    err = mix([np.where(c.broken, 1.0, np.clip(c.err, 0, 1)) for c in cohorts])
    err_clean = mix([np.clip(c.err_clean, 0, 1) for c in cohorts])
    lat = mix([np.where(c.broken, service.timeout_ms, c.lat) for c in cohorts])
    lat_clean = mix([c.lat_clean for c in cohorts])
    dq = mix([c.dq for c in cohorts])
    dq_clean = mix([c.dq_clean for c in cohorts])
    return (
        err - service.error_base,
        err_clean - service.error_base,
        lat - service.latency_ms,
        lat_clean - service.latency_ms,
        dq,
        dq_clean,
    )
