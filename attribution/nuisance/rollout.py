"""How a change reaches traffic: pods created, ready, retired; canary weights; flag ramps.

Times are seconds relative to detection (negative before it). A plan says when the
change's new behaviour serves which share of its service's requests (its exposure),
which pods it created, and when it was complete (possibly after detection, i.e. still
rolling). Nothing here knows whether the change is the culprit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from attribution.nuisance.naming import pod_name, pod_template_hash
from attribution.nuisance.topology import Service

NEVER = math.inf
LONG_AGO = -1.0e7

STYLES = ("rolling", "canary", "restart", "instant", "ramp", "scale")
POD_STYLES = ("rolling", "canary", "restart", "scale")


@dataclass
class Pod:
    name: str
    label: str
    created: float
    ready: float
    gone: float
    change_index: int | None
    cpu_factor: float = 1.0
    memory_factor: float = 1.0
    gpu_factor: float = 1.0
    warmup_factor: float = 1.0
    warmup_s: float = 60.0
    memory_start: float = 1.0
    scrape_miss: float = 0.02

    def serving(self, t: np.ndarray) -> np.ndarray:
        return (t >= self.ready) & (t < self.gone)

    def alive(self, t: np.ndarray) -> np.ndarray:
        return (t >= self.created) & (t < self.gone)


@dataclass
class Plan:
    """One change's rollout on its service."""

    change_index: int
    service: str
    style: str
    start: float
    labelled: bool
    old_label: str
    new_label: str
    steps: list[tuple[float, float]] = field(default_factory=list)
    end: float = NEVER
    surge: int = 1
    readiness: tuple[float, float] = (15.0, 60.0)
    target_replicas: int = 0

    def exposure(self, t: np.ndarray) -> np.ndarray:
        """Share of the service's requests served by the changed behaviour, per time."""
        share = np.zeros_like(t, dtype=float)
        for when, weight in self.steps:
            share = np.where(t >= when, weight, share)
        return share

    def completed_at(self) -> float | None:
        return self.end if self.end <= 0 else None


@dataclass
class Conventions:
    """Per-bundle habits of the change API and the rollout tooling."""

    instant_completion: str  # "same": completed_at = start of effect; "null": never recorded
    canary_share: float
    restart_share: float
    labelled_instant_share: float


def conventions(rng: np.random.Generator) -> Conventions:
    return Conventions(
        instant_completion="same" if rng.random() < 0.5 else "null",
        canary_share=float(rng.choice([0.0, 0.0, 0.2, 0.5])),
        restart_share=float(rng.uniform(0.2, 0.7)),
        labelled_instant_share=float(rng.uniform(0.0, 0.8)),
    )


def _readiness(rng: np.random.Generator, kind: str, role: str) -> tuple[float, float]:
    if kind == "model" and role == "llm":
        low = float(rng.uniform(90, 400))
    elif kind == "model" or role == "llm":
        low = float(rng.uniform(30, 180))
    else:
        low = float(rng.uniform(8, 60))
    return low, low * float(rng.uniform(1.1, 1.8))


def choose_style(rng: np.random.Generator, kind: str, habits: Conventions) -> str:
    if kind in ("image", "model"):
        return "canary" if rng.random() < habits.canary_share else "rolling"
    if kind in ("config", "secret"):
        return "restart" if rng.random() < habits.restart_share else "instant"
    if kind == "flag":
        return "ramp" if rng.random() < 0.3 else "instant"
    if kind in ("prompt", "corpus"):
        return "ramp" if rng.random() < 0.25 else "instant"
    if kind == "scale":
        return "scale"
    return "instant"


def plan_change(
    rng: np.random.Generator,
    index: int,
    service: Service,
    kind: str,
    style: str,
    start: float,
    labelled: bool,
    old_label: str,
    new_label: str,
    new_replicas: int | None = None,
) -> Plan:
    plan = Plan(
        change_index=index,
        service=service.name,
        style=style,
        start=start,
        labelled=labelled,
        old_label=old_label,
        new_label=new_label,
        readiness=_readiness(rng, kind, service.role),
        surge=1 if rng.random() < 0.6 else max(1, math.ceil(service.replicas * 0.25)),
        target_replicas=new_replicas or service.replicas,
    )
    if style == "instant":
        effect = start + float(rng.uniform(1, 25))
        plan.steps = [(effect, 1.0)]
        plan.end = effect
    elif style == "ramp":
        weights = [0.05, 0.25, 0.5, 1.0] if rng.random() < 0.5 else [0.1, 0.5, 1.0]
        when = start + float(rng.uniform(1, 20))
        for weight in weights:
            plan.steps.append((when, weight))
            when += float(rng.uniform(120, 1200))
        plan.end = plan.steps[-1][0]
    elif style == "canary":
        weights = [0.1, 0.25, 0.5, 1.0] if rng.random() < 0.5 else [0.2, 0.5, 1.0]
        when = start + plan.readiness[1]
        for weight in weights:
            plan.steps.append((when, weight))
            when += float(rng.uniform(180, 1500)) + plan.readiness[1]
        plan.end = plan.steps[-1][0]
    return plan


def build_pods(
    rng: np.random.Generator,
    service: Service,
    current_label: str,
    plans: list[Plan],
    churn: float,
) -> list[Pod]:
    """Pods of a service over the window: the old set, rollouts, scale events, restarts.

    At most one plan per service creates pods (the caller makes sure). Pod-creating plans
    fill their `steps` (exposure of the new pods) and `end` here.
    """
    template = pod_template_hash(rng)
    pods = [
        Pod(
            name=pod_name(rng, service.name, template),
            label=current_label,
            created=LONG_AGO,
            ready=LONG_AGO,
            gone=NEVER,
            change_index=None,
            memory_start=1.0,
        )
        for _ in range(service.replicas)
    ]
    for plan in plans:
        if plan.style not in POD_STYLES:
            continue
        new_template = pod_template_hash(rng)
        label = plan.new_label if plan.labelled else current_label
        if plan.style == "scale":
            _scale(rng, service, plan, pods, new_template, label)
        elif plan.style == "canary":
            _canary(rng, service, plan, pods, new_template, label)
        else:
            _rolling(rng, service, plan, pods, new_template, label)
    _churn(rng, service, pods, churn)
    return pods


def _new_pod(
    rng: np.random.Generator, service: Service, template: str, label: str, created: float, plan: Plan
) -> Pod:
    low, high = plan.readiness
    return Pod(
        name=pod_name(rng, service.name, template),
        label=label,
        created=created,
        ready=created + float(rng.uniform(low, high)),
        gone=NEVER,
        change_index=plan.change_index,
    )


def _rolling(
    rng: np.random.Generator, service: Service, plan: Plan, pods: list[Pod], template: str, label: str
) -> None:
    old = [pod for pod in pods if pod.gone == NEVER]
    created = plan.start + float(rng.uniform(1, 8))
    made: list[Pod] = []
    while len(made) < plan.target_replicas:
        batch = [
            _new_pod(rng, service, template, label, created, plan)
            for _ in range(min(plan.surge, plan.target_replicas - len(made)))
        ]
        for pod in batch:
            if old:
                old.pop(0).gone = pod.ready + float(rng.uniform(0, 3))
        made.extend(batch)
        created = max(pod.ready for pod in batch) + float(rng.uniform(0.5, 4))
    for leftover in old:
        leftover.gone = made[-1].ready + float(rng.uniform(0, 3))
    pods.extend(made)
    plan.end = max(pod.ready for pod in made)
    _exposure_from_pods(plan, pods, label)


def _canary(
    rng: np.random.Generator, service: Service, plan: Plan, pods: list[Pod], template: str, label: str
) -> None:
    old = [pod for pod in pods if pod.gone == NEVER]
    made: list[Pod] = []
    first_ready = NEVER
    for when, weight in plan.steps:
        wanted = max(1, math.ceil(weight * plan.target_replicas))
        created = when - plan.readiness[1]
        while len(made) < wanted:
            pod = _new_pod(rng, service, template, label, created + float(rng.uniform(0, 5)), plan)
            made.append(pod)
            first_ready = min(first_ready, pod.ready)
        if weight >= 1.0:
            promoted = max(pod.ready for pod in made)
            for pod in old:
                pod.gone = promoted + float(rng.uniform(1, 30))
            plan.end = promoted
    pods.extend(made)
    # Traffic follows the weights, but only once a canary pod is ready to take it.
    plan.steps = [(max(when, first_ready), weight) for when, weight in plan.steps]


def _scale(
    rng: np.random.Generator, service: Service, plan: Plan, pods: list[Pod], template: str, label: str
) -> None:
    current = [pod for pod in pods if pod.gone == NEVER]
    delta = plan.target_replicas - len(current)
    when = plan.start + float(rng.uniform(1, 10))
    if delta >= 0:
        same_replica_set = _template_of(pods[0])
        made = [_new_pod(rng, service, same_replica_set, label, when, plan) for _ in range(delta)]
        pods.extend(made)
        plan.end = max((pod.ready for pod in made), default=when)
    else:
        for pod in current[delta:]:
            pod.gone = when + float(rng.uniform(0, 30))
        plan.end = when + 30.0
    plan.steps = [(when, 1.0)]


def _template_of(pod: Pod) -> str:
    """The ReplicaSet hash in `<service>-<hash>-<suffix>`."""
    return pod.name.rsplit("-", 2)[1]


def _exposure_from_pods(plan: Plan, pods: list[Pod], label: str) -> None:
    """Step function of the share of serving pods that the plan created."""
    events = sorted({pod.ready for pod in pods} | {pod.gone for pod in pods if pod.gone != NEVER})
    steps: list[tuple[float, float]] = []
    for when in events:
        probe = np.array([when + 1e-6])
        serving = [pod for pod in pods if pod.serving(probe)[0]]
        if not serving:
            continue
        new = sum(1 for pod in serving if pod.change_index == plan.change_index)
        share = new / len(serving)
        if not steps or abs(steps[-1][1] - share) > 1e-9:
            steps.append((when, share))
    plan.steps = steps


def _churn(rng: np.random.Generator, service: Service, pods: list[Pod], churn: float) -> None:
    """Unrelated restarts: a node drain or an OOM kill replaces a pod (same version)."""
    if rng.random() >= churn:
        return
    for _ in range(int(rng.integers(1, 3))):
        victims = [pod for pod in pods if pod.gone == NEVER]
        if not victims:
            return
        victim = victims[int(rng.integers(len(victims)))]
        when = float(rng.uniform(-5400, -60))
        if when <= victim.ready:
            continue
        victim.gone = when
        replacement = Pod(
            name=pod_name(rng, service.name, _template_of(victim)),
            label=victim.label,
            created=when + float(rng.uniform(1, 10)),
            ready=when + float(rng.uniform(15, 90)),
            gone=NEVER,
            change_index=victim.change_index,
            cpu_factor=victim.cpu_factor,
            memory_factor=victim.memory_factor,
            gpu_factor=victim.gpu_factor,
            memory_start=float(rng.uniform(0.3, 0.8)),
            warmup_factor=float(rng.uniform(1.2, 3.0)),
            warmup_s=float(rng.uniform(30, 150)),
            scrape_miss=0.1,
        )
        pods.append(replacement)
