"""Assemble one labelled incident: a service graph, the changes, a cause, the rollouts and the telemetry.

Order matters for honesty. Change start times are drawn first, for every change from
one distribution, and the culprit is then one of them picked uniformly; ids, authors,
descriptions, version spellings, rollout styles and completion records follow from
the change's kind and the bundle's conventions only. Physics then decides what the
culprit did to its own traffic and what that did to its callers, and the telemetry
layout decides what the bundle shows.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from attribution.nuisance import naming
from attribution.nuisance.emit import Telemetry, emit_series
from attribution.nuisance.naming import pick
from attribution.nuisance.physics import SILENT_MODES, ChangeNuisance, Fault, ServiceState, World, simulate
from attribution.nuisance.recipes import Recipe
from attribution.nuisance.rollout import (
    NEVER,
    POD_STYLES,
    Conventions,
    Plan,
    Pod,
    build_pods,
    choose_style,
    conventions,
    plan_change,
)
from attribution.nuisance.topology import ROLE_KINDS, Edge, Service, Topology, build_topology

MODE_KINDS: dict[str, tuple[str, ...]] = {
    "errors": ("image", "config", "flag", "secret", "model", "prompt", "corpus", "infra"),
    "latency": ("image", "config", "flag", "model", "infra", "corpus"),
    "ttft": ("image", "model", "config"),
    "quality": ("prompt", "model", "corpus"),
    "never_reports": ("image", "model"),
    "idle": ("image", "model"),
}
AI_MODE_KINDS: dict[str, tuple[str, ...]] = {
    "errors": ("config", "flag"),
    "latency": ("image", "model"),
    "ttft": ("image", "model"),
    "quality": ("prompt", "model", "corpus"),
}
_REQUEST_SYMPTOM_ROLES = ("edge", "app", "orchestrator", "gateway_ai", "guardrails", "retriever")
SYMPTOM_ROLES: dict[str, tuple[str, ...]] = {
    "errors": _REQUEST_SYMPTOM_ROLES,
    "never_reports": _REQUEST_SYMPTOM_ROLES,
    "idle": _REQUEST_SYMPTOM_ROLES,
    "latency": (*_REQUEST_SYMPTOM_ROLES, "llm"),
    "ttft": ("llm", "orchestrator", "edge", "gateway_ai"),
    "quality": ("orchestrator", "retriever", "llm"),
}
EXTERNAL_DEPENDENCIES = (
    "payment-provider",
    "openai-api",
    "maps-api",
    "sms-gateway",
    "identity-provider",
    "s3",
)
MODEL_ROLES = ("llm", "embedder", "reranker", "moderation")


class Retry(Exception):
    """This draw cannot make a consistent incident; draw again."""


@dataclass
class DraftChange:
    index: int
    service: str
    kind: str
    start: float
    style: str = "instant"
    labelled: bool = False
    from_version: str | None = None
    to_version: str | None = None
    plan: Plan | None = None
    nuisance: ChangeNuisance = field(default_factory=ChangeNuisance)
    part: str = ""
    hold: bool = False


@dataclass
class Incident:
    document: dict[str, Any]
    culprit: str | None
    notes: list[str]
    facts: dict[str, str | int | float | bool | None]


# backout's context collection: a 2-hour lookback for changes, evidence from 10 minutes before the earliest.
LOOKBACK_S = 7200.0
EVIDENCE_LEAD_S = 600.0


def build_incident(rng: np.random.Generator, recipe: Recipe) -> Incident:
    for _ in range(60):
        try:
            return _Builder(rng, recipe).run()
        except Retry:
            continue
    raise RuntimeError("could not draw a consistent incident in 60 attempts")


def _loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _weighted(rng: np.random.Generator, options: tuple[tuple[str, float], ...]) -> str:
    names = [name for name, _ in options]
    weights = np.array([weight for _, weight in options], dtype=float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def _minutes(seconds: float) -> str:
    return f"{abs(seconds) / 60:.1f} min"


class _Builder:
    def __init__(self, rng: np.random.Generator, recipe: Recipe) -> None:
        self.rng = rng
        self.recipe = recipe
        self.notes: list[str] = []
        self.facts: dict[str, str | int | float | bool | None] = {}
        self.faults: list[Fault] = []
        self.changes: list[DraftChange] = []
        self.culprit: DraftChange | None = None
        self.external: str | None = None
        self.onset = 0.0

    # --- the frame: graph, window, conventions ----------------------------------------

    def run(self) -> Incident:
        rng, recipe = self.rng, self.recipe
        self.topology = build_topology(rng, pick(rng, recipe.domains))
        self._window()
        self.habits: Conventions = conventions(rng)
        self.versions = naming.version_style(rng)
        self.ids = naming.id_scheme(rng)
        self.namespace = "prod" if rng.random() < 0.7 else "production"
        self.mode = _weighted(rng, recipe.modes)
        n_changes = int(rng.integers(recipe.n_changes[0], recipe.n_changes[1] + 1))
        starts = self._starts(n_changes)
        if self.mode == "none" or (recipe.preexisting and rng.random() < recipe.no_culprit_share):
            self.mode = "none"
            self._outside_cause(starts)
        else:
            self._culprit_and_symptom(starts)
        self._place_distractors()
        self._frame_to_changes()
        self._styles()
        self._versions()
        self._nuisance()
        self._plans_and_pods()
        self._telemetry()
        states = self._simulate_until_visible()
        return self._assemble(states)

    def _window(self) -> None:
        rng = self.rng
        window = _loguniform(rng, 300, 1200) if rng.random() < 0.2 else _loguniform(rng, 1200, 7200)
        steps = [step for step in (15, 30, 60) if 10 <= window / step <= 240]
        self.step = float(pick(rng, [str(step) for step in steps]))
        count = int(window // self.step)
        self.window = count * self.step
        self.grid = self.step * np.arange(-count, 1, dtype=float)
        epoch = datetime(2026, 1, 5, tzinfo=UTC).timestamp() + float(rng.uniform(0, 330 * 86400))
        self.detected = datetime.fromtimestamp(epoch - epoch % self.step, tz=UTC)
        self.times = [self.detected + timedelta(seconds=float(t)) for t in self.grid]

    def _starts(self, count: int) -> list[float]:
        """Every change's start, from one distribution: most inside the drawn window, some before it.

        Some changes began well before the symptom (a slow rollout, this morning's config); the
        metric window is then widened to cover them as the pipeline does (`_frame_to_changes`). The
        culprit is picked among these uniformly afterwards, so its placement is that of any other change.
        """
        rng, window = self.rng, self.window
        if self.recipe.concurrent:
            centre = float(np.clip(rng.uniform(0.3, 0.8) * window, 300, 2100))
            span = float(rng.uniform(60, 480))
            lags = [centre + float(rng.uniform(0, span)) for _ in range(count)]
        else:
            inside = max(window - 30.0, 200.0)
            lags = [
                _loguniform(rng, 180, inside) if rng.random() < 0.85 else window + _loguniform(rng, 60, 5400)
                for _ in range(count)
            ]
        # A change older than the lookback is never a candidate: the ledger does not list it.
        return sorted(-min(lag, LOOKBACK_S - 30.0) for lag in lags)

    def _frame_to_changes(self) -> None:
        """Widen the metric window the way backout's context collection does.

        The pipeline reads evidence from EVIDENCE_LEAD_S before the earliest candidate change (never
        further back than its lookback) until detection, so a bundle it assembles holds pre-change
        data for every change it lists. Draws no random numbers: the rest of the incident is unchanged.
        """
        earliest = min((change.start for change in self.changes), default=0.0)
        wanted = min(LOOKBACK_S, max(self.window, -earliest + EVIDENCE_LEAD_S))
        if wanted <= self.window:
            return
        step = next(
            (s for s in (self.step, 30.0, 60.0, 120.0) if s >= self.step and wanted / s <= 240), 120.0
        )
        count = int(np.ceil(wanted / step))
        self.step = step
        self.window = count * step
        self.grid = step * np.arange(-count, 1, dtype=float)
        epoch = self.detected.timestamp()
        self.detected = datetime.fromtimestamp(epoch - epoch % step, tz=UTC)
        self.times = [self.detected + timedelta(seconds=float(t)) for t in self.grid]

    # --- the cause -----------------------------------------------------------------------

    def _culprit_and_symptom(self, starts: list[float]) -> None:
        rng, recipe, topology = self.rng, self.recipe, self.topology
        hops_weights = np.array(recipe.hops, dtype=float)
        if self.mode in SILENT_MODES:
            hops_weights[0] = 0.0
        hops = int(rng.choice(4, p=hops_weights / hops_weights.sum()))
        kinds_for_mode = AI_MODE_KINDS[self.mode] if recipe.ai else MODE_KINDS[self.mode]
        pairs: list[tuple[str, str, tuple[str, ...]]] = []
        for symptom, service in topology.services.items():
            if service.role not in SYMPTOM_ROLES[self.mode] or service.low_traffic:
                continue
            for below, depth in topology.depth_below(symptom).items():
                role = topology.services[below].role
                kinds = tuple(kind for kind in kinds_for_mode if kind in ROLE_KINDS.get(role, {}))
                if depth == hops and kinds and self._mode_fits(symptom, below, hops):
                    pairs.append((symptom, below, kinds))
        if not pairs:
            raise Retry
        symptom, culprit_service, kinds = pairs[int(rng.integers(len(pairs)))]
        role = topology.services[culprit_service].role
        weights = np.array([ROLE_KINDS[role][kind] for kind in kinds], dtype=float)
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        self.symptom = symptom
        self.hops = hops
        index = int(rng.integers(len(starts)))
        self.culprit = DraftChange(
            index=index, service=culprit_service, kind=kind, start=starts[index], part="culprit"
        )
        self.changes = [
            self.culprit if i == index else DraftChange(index=i, service="", kind="", start=start)
            for i, start in enumerate(starts)
        ]
        self.symptom_metric = self._symptom_metric(symptom)

    def _mode_fits(self, symptom: str, below: str, hops: int) -> bool:
        role = self.topology.services[symptom].role
        below_role = self.topology.services[below].role
        if self.mode == "ttft":
            return below_role == "llm" and (role == "llm") == (hops == 0)
        if self.mode == "quality":
            if role == "retriever":
                return below_role in ("retriever", "embedder", "reranker")
            if role == "llm":
                return hops == 0
            return below_role != "datastore"
        if self.mode == "latency" and self.recipe.ai:
            return below_role in ("llm", "embedder", "reranker", "retriever", "moderation")
        if self.mode == "errors" and self.recipe.ai:
            return below_role != "datastore"
        return True

    def _symptom_metric(self, symptom: str) -> str:
        rng = self.rng
        role = self.topology.services[symptom].role
        self.error_metric = _weighted(
            rng, (("error_rate", 0.6), ("success_rate", 0.3), ("availability", 0.1))
        )
        self.p99 = rng.random() < 0.4
        if self.mode in ("errors",) or (self.mode in SILENT_MODES and rng.random() < 0.7):
            return self.error_metric
        if self.mode == "ttft":
            return "ttft_ms" if role == "llm" else "latency_ms"
        if self.mode == "quality":
            if role == "retriever":
                return "retrieval_precision"
            if role == "llm":
                return "hallucination_rate"
            return "eval_score" if rng.random() < 0.75 else "hallucination_rate"
        return "latency_p99_ms" if self.p99 and rng.random() < 0.4 else "latency_ms"

    def _outside_cause(self, starts: list[float]) -> None:
        rng, topology = self.rng, self.topology
        cause = self.recipe.cause or ("load" if rng.random() < 0.5 else "dependency")
        self.cause = cause
        self.hops = 0
        self.onset = -float(rng.uniform(150, min(1500, max(200.0, self.window * 0.7))))
        self.changes = [
            DraftChange(index=i, service="", kind="", start=start) for i, start in enumerate(starts)
        ]
        if cause == "load":
            candidates = [
                name
                for name, service in topology.services.items()
                if service.role in ("edge", "orchestrator", "app")
                and not service.low_traffic
                and service.level <= 1
            ]
            self.symptom = pick(rng, candidates)
            self.surge = (float(rng.uniform(1.5, 3.0)), float(rng.uniform(30, 300)))
            self.notes.append(
                f"cause: traffic surge x{self.surge[0]:.1f} from {_minutes(self.onset)} before detection "
                "(no change is to blame)"
            )
        else:
            self._failing_dependency()
        self.mode = "none"
        self.symptom_metric = ""
        self.error_metric = _weighted(
            rng, (("error_rate", 0.6), ("success_rate", 0.3), ("availability", 0.1))
        )
        self.p99 = rng.random() < 0.4
        if rng.random() < self.recipe.coincident_distractor and self.changes:
            coincident = self.changes[int(rng.integers(len(self.changes)))]
            coincident.start = self.onset - float(rng.uniform(60, 600))
            coincident.part = "coincident"
            self.changes.sort(key=lambda change: change.start)

    def _failing_dependency(self) -> None:
        rng, topology = self.rng, self.topology
        if rng.random() < 0.5:
            name = pick(rng, [n for n in EXTERNAL_DEPENDENCIES if n not in topology.services])
            callers = [
                service.name
                for service in topology.services.values()
                if service.role in ("app", "retriever", "orchestrator", "gateway_ai")
                and not service.low_traffic
            ]
            chosen = [
                callers[int(i)] for i in rng.choice(len(callers), size=min(2, len(callers)), replace=False)
            ]
            external = Service(
                name=name,
                role="datastore",
                level=5,
                rps=100.0,
                replicas=3,
                error_base=0.001,
                latency_ms=float(rng.uniform(40, 300)),
                timeout_ms=5000.0,
                cpu_idle=0.0,
                cpu_per_rps=0.0,
                memory_mib=0.0,
                utilisation=0.2,
                external=True,
            )
            services = {**topology.services, name: external}
            edges = [
                *topology.edges,
                *(
                    Edge(caller, name, float(rng.uniform(0.3, 1.0)), float(rng.uniform(0.6, 1.0)), 0.8)
                    for caller in chosen
                ),
            ]
            self.topology = topology = Topology(services=services, edges=edges, domain=topology.domain)
        else:
            options = [
                name
                for name, service in topology.services.items()
                if service.role in ("datastore", "llm", "embedder", "app") and service.level >= 2
            ]
            if not options:
                raise Retry
            name = pick(rng, options)
        self.external = name
        ancestors = [
            a
            for a in topology.ancestors(name)
            if topology.services[a].role in _REQUEST_SYMPTOM_ROLES and not topology.services[a].low_traffic
        ]
        if not ancestors:
            raise Retry
        depth = topology.depth_below
        near = [a for a in ancestors if depth(a).get(name, 9) <= 3]
        self.symptom = pick(rng, near or ancestors)
        mode = "errors" if rng.random() < 0.6 else "latency"
        magnitude = float(rng.uniform(0.05, 0.8)) if mode == "errors" else float(rng.uniform(3, 20))
        fault = Fault(service=name, mode=mode, magnitude=magnitude, change_index=None, onset=self.onset)
        self._maybe_flap(fault)
        self.faults.append(fault)
        self.notes.append(
            f"cause: {name} (not in the change list) fails from {_minutes(self.onset)} before detection: "
            f"{mode} {'+' if mode == 'errors' else 'x'}{magnitude:.2f}"
            + (" (flapping)" if fault.flap_period else "")
        )

    def _maybe_flap(self, fault: Fault) -> None:
        if self.rng.random() < self.recipe.flapping:
            fault.flap_period = float(self.rng.uniform(90, 600))
            fault.flap_duty = float(self.rng.uniform(0.25, 0.65))
            fault.flap_phase = float(self.rng.uniform(0, fault.flap_period))

    # --- the other changes -----------------------------------------------------------------

    def _place_distractors(self) -> None:
        rng, topology = self.rng, self.topology
        below = [name for name in topology.depth_below(self.symptom) if name != self.symptom]
        above = topology.ancestors(self.symptom)
        changeable = [
            name
            for name, service in topology.services.items()
            if not service.external and name != self.external
        ]
        rest = [
            name for name in changeable if name not in below and name not in above and name != self.symptom
        ]
        below = [name for name in below if name in changeable]
        for change in self.changes:
            if change.part == "culprit":
                continue
            draw = rng.random()
            if draw < 0.15:
                pool = [self.symptom]
            elif draw < 0.65:
                pool = below
            elif draw < 0.85:
                pool = above
            else:
                pool = rest
            pool = [name for name in pool if name in changeable] or changeable
            change.service = pick(rng, pool)
            change.kind = self._kind_for(change.service)
        self._force_parts()

    def _kind_for(self, service: str) -> str:
        rng = self.rng
        role = self.topology.services[service].role
        table = dict(ROLE_KINDS[role])
        if self.recipe.ai and self.culprit is not None:
            # AI families: culprit kinds are common among the other changes too.
            for kind in AI_MODE_KINDS[self.mode]:
                if kind in table:
                    table[kind] *= 3.0
        kinds = list(table)
        weights = np.array([table[kind] for kind in kinds])
        return kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]

    def _others(self) -> list[DraftChange]:
        return [change for change in self.changes if change.part not in ("culprit",)]

    def _force_parts(self) -> None:
        rng, recipe, topology = self.rng, self.recipe, self.topology
        others = [c for c in self._others() if c.part == ""]
        culprit = self.culprit
        if culprit is not None and self.recipe.ai:
            same = [c for c in others if c.kind == culprit.kind]
            if not same and others:
                donor = others[int(rng.integers(len(others)))]
                hosts = [
                    n for n, s in topology.services.items() if culprit.kind in ROLE_KINDS.get(s.role, {})
                ]
                donor.service = pick(rng, hosts)
                donor.kind = culprit.kind
        if culprit is not None and self.hops >= 1 and others and rng.random() < recipe.path_distractor:
            path = topology.path(self.symptom, culprit.service)[:-1]
            trap = others.pop(int(rng.integers(len(others))))
            trap.service = pick(rng, path)
            trap.kind = "image" if "image" in ROLE_KINDS[topology.services[trap.service].role] else "config"
            trap.part = "path"
        if recipe.silent_distractors > 0:
            for change in others:
                role = topology.services[change.service].role
                kinds = [kind for kind in ("image", "model") if kind in ROLE_KINDS[role]]
                if change.part or not kinds or rng.random() >= recipe.silent_distractors:
                    continue
                change.kind = "model" if "model" in kinds and rng.random() < 0.5 else "image"
                change.part = "silent"
                change.nuisance.silent = "idle" if rng.random() < 0.5 else "exporter"
        if self.mode == "none" and getattr(self, "cause", "") == "load" and rng.random() < 0.6:
            loaded = [c for c in others if c.part == ""]
            for change in loaded[: int(rng.integers(1, 3))]:
                change.kind = "scale"
                change.start = self.onset + float(rng.uniform(60, 300))
                change.part = "autoscaler"
                if change.start > -30:
                    change.start = -30.0 - float(rng.uniform(0, 30))

    # --- rollout styles and names --------------------------------------------------------

    def _styles(self) -> None:
        rng, recipe = self.rng, self.recipe
        pod_owner: dict[str, int] = {}
        ordered = sorted(self.changes, key=lambda c: (c.part != "culprit", c.part != "silent", c.start))
        for change in ordered:
            style = choose_style(rng, change.kind, self.habits)
            if change.part == "silent" or (change.part == "culprit" and self.mode in SILENT_MODES):
                style = "rolling" if rng.random() >= max(self.habits.canary_share, 0.3) else "canary"
                if change.nuisance.silent == "idle" or (self.mode == "idle" and change.part == "culprit"):
                    style = "canary"
            if recipe.concurrent:
                style, change.hold = self._concurrent_style(change, style)
            elif style in ("rolling", "canary", "restart", "ramp") and rng.random() < recipe.hold_share:
                change.hold = True
            if style in POD_STYLES:
                if change.service in pod_owner:
                    if change.kind in ("image", "model", "scale"):
                        moved = self._move_pod_change(change, pod_owner)
                        if not moved:
                            change.kind, style = "config", "instant" if not recipe.concurrent else "ramp"
                    else:
                        style = "instant" if not recipe.concurrent else "ramp"
                if style in POD_STYLES:
                    pod_owner[change.service] = change.index
            change.style = style
        for change in self.changes:
            if (
                change.part == "culprit"
                and self.mode in SILENT_MODES
                and change.style not in ("rolling", "canary")
            ):
                raise Retry

    def _concurrent_style(self, change: DraftChange, style: str) -> tuple[str, bool]:
        if change.kind in ("image", "model"):
            return ("canary" if self.rng.random() < 0.35 else "rolling"), True
        if change.kind in ("config", "secret"):
            return "restart", True
        if change.kind == "scale":
            change.kind = (
                "image" if "image" in ROLE_KINDS[self.topology.services[change.service].role] else "config"
            )
            return ("rolling" if change.kind == "image" else "restart"), True
        return "ramp", True

    def _move_pod_change(self, change: DraftChange, pod_owner: dict[str, int]) -> bool:
        if change.part in ("culprit", "path"):
            return False
        hosts = [
            name
            for name, service in self.topology.services.items()
            if change.kind in ROLE_KINDS.get(service.role, {})
            and name not in pod_owner
            and not service.external
            and name != self.external
        ]
        if not hosts:
            return False
        change.service = pick(self.rng, hosts)
        return True

    def _versions(self) -> None:
        rng = self.rng
        self.current_label: dict[str, str] = {}
        for name, service in self.topology.services.items():
            if service.role in MODEL_ROLES and rng.random() < 0.5:
                self.current_label[name] = naming.model_pair(rng, service.role)[0]
            else:
                self.current_label[name] = self.versions.image_pair(rng, name)[0]
        labelled_services: set[str] = set()
        ordered = sorted(self.changes, key=lambda c: (c.style not in ("rolling", "canary"), c.start))
        for change in ordered:
            service = self.topology.services[change.service]
            change.from_version, change.to_version = self._version_pair(change, service)
            wants_label = (change.style in ("rolling", "canary") and change.kind in ("image", "model")) or (
                change.style in ("instant", "ramp")
                and change.kind in ("prompt", "corpus", "model")
                and rng.random() < self.habits.labelled_instant_share
            )
            if wants_label and change.service not in labelled_services:
                change.labelled = True
                labelled_services.add(change.service)
                if change.style in ("rolling", "canary"):
                    self.current_label[change.service] = (
                        change.from_version or self.current_label[change.service]
                    )
                else:
                    self.current_label[change.service] = self.current_label[change.service]
        for change in self.changes:
            if change.part in ("silent",) and not change.labelled:
                change.part = ""
        if self.culprit is not None and self.mode in SILENT_MODES and not self.culprit.labelled:
            raise Retry

    def _version_pair(self, change: DraftChange, service: Service) -> tuple[str, str]:
        rng = self.rng
        kind = change.kind
        if kind == "image":
            current = self.current_label[service.name]
            after = self.versions.image_pair(rng, service.name)[1]
            if service.role in MODEL_ROLES and not _looks_like_image(current):
                current = self.versions.image_pair(rng, service.name)[0]
            return current, after
        if kind == "model":
            return naming.model_pair(rng, service.role)
        if kind == "prompt":
            return naming.prompt_pair(rng, service.name)
        if kind == "corpus":
            return naming.corpus_pair(rng)
        if kind == "config":
            return naming.config_pair(rng)
        if kind == "flag":
            return naming.flag_pair(rng)
        if kind == "scale":
            if change.part == "autoscaler":
                return (
                    f"replicas={service.replicas}",
                    f"replicas={service.replicas + int(rng.integers(2, 5))}",
                )
            return naming.scale_pair(rng, service.replicas)
        if kind == "secret":
            return naming.secret_pair(rng)
        return naming.infra_pair(rng)

    # --- harmless effects of every change ------------------------------------------------------

    def _nuisance(self) -> None:
        rng = self.rng
        for change in self.changes:
            nuisance = ChangeNuisance(silent=change.nuisance.silent)
            nuisance.latency_shift = float(
                rng.normal(0.0, 0.05 if change.kind in ("image", "model") else 0.02)
            )
            if change.kind in ("prompt", "model", "corpus"):
                nuisance.quality_shift = float(rng.normal(0.0, 0.012))
            change.nuisance = nuisance

    def _pod_traits(self, pods: list[Pod], change: DraftChange) -> None:
        rng, recipe = self.rng, self.recipe
        role = self.topology.services[change.service].role
        extreme = rng.random() < recipe.resource_extreme
        if extreme:
            cpu = float(rng.choice([-1, 1]) * rng.uniform(np.log(2), np.log(12)))
            memory = float(rng.choice([-1, 1, 1]) * rng.uniform(np.log(3), np.log(40)))
        else:
            cpu, memory = float(rng.normal(0, 0.35)), float(rng.normal(0, 0.4))
        # Tens of times, but within what a node holds (a pod above ~200 GiB would not schedule).
        service = self.topology.services[change.service]
        memory = min(memory, float(np.log(200_000.0 / max(service.memory_mib, 1.0))))
        gpu = float(rng.uniform(np.log(0.5), np.log(6))) if change.kind == "model" and role == "llm" else 0.0
        warm = float(rng.uniform(*recipe.warmup)) * (1.8 if role == "llm" else 1.0)
        warm_s = float(rng.uniform(30, 240)) * (2.0 if role == "llm" or change.kind == "model" else 1.0)
        memory_start = float(rng.uniform(0.2, 1.0))
        miss = float(rng.uniform(*recipe.sparse_new_pods))
        for pod in pods:
            if pod.change_index != change.index:
                continue
            pod.cpu_factor = float(np.exp(cpu + rng.normal(0, 0.05)))
            pod.memory_factor = float(np.exp(memory + rng.normal(0, 0.03)))
            pod.gpu_factor = float(np.exp(gpu))
            pod.warmup_factor = warm
            pod.warmup_s = warm_s
            pod.memory_start = memory_start
            pod.scrape_miss = miss
        self.resource_notes.append((change, cpu, memory, extreme))

    # --- rollouts ------------------------------------------------------------------------------

    def _plan(self, change: DraftChange) -> Plan:
        service = self.topology.services[change.service]
        new_replicas = None
        if change.kind == "scale" and change.to_version:
            new_replicas = int(change.to_version.split("=")[1])
            if change.part != "autoscaler" and new_replicas < service.replicas:
                # A harmless scale-down leaves headroom: utilisation rises by a third at most.
                floor = math.ceil(service.replicas / 1.35)
                new_replicas = max(new_replicas, floor, 1)
                if new_replicas >= service.replicas:
                    new_replicas = service.replicas + int(self.rng.integers(1, 3))
                change.to_version = f"replicas={new_replicas}"
        old = self.current_label[change.service]
        plan = plan_change(
            self.rng,
            change.index,
            service,
            change.kind,
            change.style,
            change.start,
            change.labelled,
            old
            if change.labelled and change.style in ("rolling", "canary")
            else (change.from_version or old),
            change.to_version or old,
            new_replicas=new_replicas,
        )
        if change.labelled and change.style in ("instant", "ramp"):
            # A prompt or index served side by side: series carry the prompt/index version.
            plan.old_label, plan.new_label = change.from_version or old, change.to_version or old
        idle_culprit = change.part == "culprit" and self.mode == "idle"
        if change.hold or idle_culprit:
            self._hold(plan)
        if change.nuisance.silent == "idle" and change.style == "canary":
            plan.steps = [(plan.steps[0][0], 0.0), (NEVER, 0.25)]
            plan.end = NEVER
        return plan

    def _hold(self, plan: Plan) -> None:
        """A rollout paused or still progressing at detection: later steps come after it."""
        rng = self.rng
        if plan.style in ("canary", "ramp") and len(plan.steps) > 1:
            keep = int(rng.integers(1, len(plan.steps)))
            plan.steps = plan.steps[:keep] + [(NEVER, weight) for _, weight in plan.steps[keep:]]
            plan.end = NEVER
        elif plan.style in ("rolling", "restart"):
            plan.surge = 1
            plan.readiness = (plan.readiness[0] * 2.0 + 30.0, plan.readiness[1] * 2.5 + 60.0)

    def _plans_and_pods(self) -> None:
        self.resource_notes: list[tuple[DraftChange, float, float, bool]] = []
        self.pods: dict[str, list[Pod]] = {}
        self.plans: dict[str, list[Plan]] = {}
        if self.culprit is not None:
            # The culprit's rollout fixes the onset, which a preexisting-degradation trap must follow.
            self._plan_service(self.culprit.service)
            self._set_culprit_fault()
        self._place_trap()
        for name in self.topology.services:
            if name not in self.pods:
                self._plan_service(name)
                continue
            for change in by_service_of(self.changes, name):
                if change.plan is None:
                    change.plan = self._plan(change)
                    self.plans[name].append(change.plan)

    def _plan_service(self, name: str) -> None:
        service = self.topology.services[name]
        changes = sorted(by_service_of(self.changes, name), key=lambda c: c.start)
        plans = []
        for change in changes:
            change.plan = self._plan(change)
            plans.append(change.plan)
        pods = build_pods(self.rng, service, self.current_label[name], plans, self.recipe.churn)
        for change in changes:
            if change.hold and change.style in ("rolling", "restart") and change.plan is not None:
                _stall(change.plan, pods, self.rng)
            if change.style in POD_STYLES:
                self._pod_traits(pods, change)
        self.pods[name] = pods
        self.plans[name] = plans

    # --- the culprit's fault ------------------------------------------------------------------

    def _exposure_start(self, plan: Plan) -> float:
        positive = [when for when, weight in plan.steps if weight > 0 and when != NEVER]
        return min(positive) if positive else NEVER

    def _set_culprit_fault(self) -> None:
        rng, _recipe = self.rng, self.recipe
        culprit = self.culprit
        assert culprit is not None and culprit.plan is not None
        exposed_from = self._exposure_start(culprit.plan)
        if exposed_from > -90:
            raise Retry
        onset, creep = exposed_from + float(rng.uniform(0, 45)), False
        # A fault live since long before detection would have paged long ago: it set in later
        # (a cache expiring, a leak filling up, a certificate or quota running out).
        latent = exposed_from < -2400
        if latent:
            if rng.random() < 0.5:
                onset = -float(rng.uniform(180, 1200))
            else:
                creep = True
        self.onset = onset
        exposure_now = float(culprit.plan.exposure(np.array([0.0]))[0])
        if exposure_now <= 0:
            raise Retry
        magnitude = self._magnitude(culprit, max(exposure_now, 0.05))
        fault = Fault(
            service=culprit.service,
            mode=self.mode,
            magnitude=magnitude,
            change_index=culprit.index,
            onset=onset,
            creep=creep,
        )
        if self.mode not in SILENT_MODES:
            self._maybe_flap(fault)
        self.faults.append(fault)
        self.fault = fault
        self.facts["latent"] = latent and not creep
        self.facts["creeping"] = creep

    def _magnitude(self, culprit: DraftChange, exposure: float) -> float:
        rng, topology = self.rng, self.topology
        route = topology.path(self.symptom, culprit.service)
        edges = [next(e for e in topology.callees(a) if e.callee == b) for a, b in itertools.pairwise(route)]
        scale = float(rng.uniform(*self.recipe.magnitude))
        symptom = topology.services[self.symptom]
        source = topology.services[culprit.service]
        if self.mode == "errors":
            factor = math.prod(e.fraction * e.error_leak for e in edges)
            target = _loguniform(rng, 0.02, 0.3) * scale
            return float(np.clip(target / (factor * exposure), 0.01, 0.97))
        if self.mode in ("latency", "ttft"):
            factor = math.prod(e.fraction * e.latency_weight for e in edges)
            relative = _loguniform(rng, 0.4, 4.0) * scale
            base = source.ttft_ms if self.mode == "ttft" and source.role == "llm" else source.latency_ms
            reference = symptom.ttft_ms if self.symptom_metric == "ttft_ms" else symptom.latency_ms
            needed = relative * reference / max(factor * exposure, 1e-3)
            return float(np.clip(1.0 + needed / base, 1.3, 40.0))
        if self.mode == "quality":
            factor = math.prod(e.fraction * 0.8 for e in edges)
            target = float(rng.uniform(0.06, 0.25)) * scale
            return float(np.clip(target / (factor * exposure), 0.04, 0.6))
        return 1.0

    def _place_trap(self) -> None:
        """Preexisting degradation: a later change lands on the symptom's path after the onset."""
        rng, recipe, topology = self.rng, self.recipe, self.topology
        if not recipe.preexisting:
            return
        latest = -60.0
        earliest = self.onset + 60.0
        if earliest >= latest:
            raise Retry
        candidates = [c for c in self.changes if c.part in ("",) and c.plan is None]
        if not candidates:
            raise Retry
        trap = candidates[int(rng.integers(len(candidates)))]
        trap.start = float(rng.uniform(earliest, min(earliest + 900.0, latest)))
        on_path = [self.symptom]
        if self.culprit is not None:
            on_path = topology.path(self.symptom, self.culprit.service)[:-1] or [self.symptom]
        elif self.external is not None:
            on_path = [n for n in topology.path(self.symptom, self.external)[:-1]] or [self.symptom]
        trap.service = self.symptom if rng.random() < 0.5 else pick(rng, on_path)
        trap.kind = pick(
            rng,
            [k for k in ("image", "config", "flag") if k in ROLE_KINDS[topology.services[trap.service].role]],
        )
        trap.part = "trap"
        trap.style = choose_style(rng, trap.kind, self.habits)
        owner = [
            c for c in self.changes if c is not trap and c.service == trap.service and c.style in POD_STYLES
        ]
        if trap.style in POD_STYLES and (owner or trap.service in self.pods):
            trap.kind, trap.style = "config", "instant"
        trap.labelled = False
        if (
            trap.kind == "image"
            and trap.style in ("rolling", "canary")
            and not any(c.labelled for c in self.changes if c.service == trap.service and c is not trap)
        ):
            trap.labelled = True
        trap.from_version, trap.to_version = self._version_pair(trap, topology.services[trap.service])
        if trap.labelled:
            trap.from_version = self.current_label[trap.service]
        self.changes.sort(key=lambda change: change.start)
        self.notes.append(
            f"trap: a {trap.kind} change on {trap.service} started {_minutes(trap.start - self.onset)} "
            "after the degradation began"
        )

    # --- telemetry -----------------------------------------------------------------------------

    def _telemetry(self) -> None:
        rng, recipe, topology = self.rng, self.recipe, self.topology
        profiles: tuple[tuple[tuple[str, ...], float], ...] = {
            "default": (
                (("service",), 0.35),
                (("service", "version"), 0.35),
                (("version",), 0.1),
                (("pod",), 0.1),
                (("service", "pod"), 0.1),
            ),
            "pods": (
                (("pod",), 0.35),
                (("pod", "version"), 0.35),
                (("service", "pod"), 0.15),
                (("service", "version", "pod"), 0.15),
            ),
            "versions": ((("version",), 0.5), (("service", "version"), 0.5)),
        }[recipe.layout]
        no_service_level = rng.random() < recipe.no_service_level
        layouts: dict[str, tuple[str, ...]] = {}
        for name in topology.services:
            choice = profiles[int(rng.choice(len(profiles), p=_normalised([w for _, w in profiles])))][0]
            if no_service_level:
                choice = tuple(item for item in choice if item != "service") or ("version",)
            layouts[name] = choice
        scraped = {}
        for name, service in topology.services.items():
            if service.external:
                scraped[name] = False
            elif service.role == "datastore":
                scraped[name] = rng.random() < 0.6
            else:
                scraped[name] = rng.random() < 0.93
        scraped[self.symptom] = True
        peers: list[tuple[str, str, str]] = []
        for edge in topology.edges:
            if rng.random() < recipe.peer:
                side = "client" if rng.random() < 0.7 else "server"
                peers.append((edge.caller, edge.callee, side))
        extra: dict[str, list[str]] = {}
        for name, service in topology.services.items():
            wanted = []
            if service.role == "orchestrator" and rng.random() < 0.5:
                wanted.append("eval_score")
            if service.role in ("orchestrator", "llm") and rng.random() < 0.25:
                wanted.append("hallucination_rate")
            if service.role == "retriever" and rng.random() < 0.5:
                wanted.append("retrieval_precision")
            extra[name] = wanted
        quality_symptom = self.symptom_metric in ("eval_score", "hallucination_rate", "retrieval_precision")
        if quality_symptom and self.symptom_metric not in extra[self.symptom]:
            extra[self.symptom].append(self.symptom_metric)
        visibility = _weighted(rng, recipe.visibility)
        self.telemetry = Telemetry(
            error_metric=self.error_metric,
            p99=self.p99 or self.symptom_metric == "latency_p99_ms",
            resource_source="kubelet" if rng.random() < 0.7 else "app",
            aggregate="sum" if rng.random() < 0.5 else "avg",
            layouts=layouts,
            scraped=scraped,
            peer_edges=peers,
            eval_interval=float(pick(rng, ("300", "600", "900"))),
            # An eval-sourced incident is detected by a run: one happens at detection.
            eval_phase=0.0 if self.symptom_metric == "eval_score" else float(rng.uniform(0, 900)),
            eval_per_version=rng.random() < 0.4,
            extra_metrics=extra,
            symptom_service=self.symptom,
            symptom_visibility=visibility,
            drop_symptom_service=visibility == "absent" and rng.random() < 0.3,
        )
        self.facts["layout"] = recipe.layout
        self.facts["no_service_level"] = no_service_level
        self.facts["visibility"] = visibility

    # --- physics -------------------------------------------------------------------------------

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        rng, recipe, grid = self.rng, self.recipe, self.grid
        amplitude = float(rng.uniform(*recipe.seasonal))
        phase = float(rng.uniform(0, 2 * np.pi))
        load = 1.0 + amplitude * np.sin(2 * np.pi * grid / 86400.0 + phase) - amplitude * np.sin(phase)
        load = np.clip(load, 0.3, None)
        if rng.random() < recipe.batch_spikes:
            period = float(rng.uniform(600, 1800))
            length = float(rng.uniform(60, 240))
            height = float(rng.uniform(0.15, 0.5))
            offset = float(rng.uniform(0, period))
            load = load * (1.0 + height * (np.mod(grid + offset, period) < length))
            self.notes.append(f"nuisance: cron traffic spikes +{height:.0%} every {period / 60:.0f} min")
        full = load
        if self.mode == "none" and getattr(self, "cause", "") == "load":
            multiple, ramp = self.surge
            full = load * (1.0 + (multiple - 1.0) / (1.0 + np.exp(-(grid - self.onset) / ramp)))
        if amplitude > 0.15:
            self.notes.append(f"nuisance: seasonal load trend (amplitude {amplitude:.2f})")
        return load, full

    def _world(self, clean: np.ndarray, full: np.ndarray, noise: float) -> World:
        labelled = {}
        for change in self.changes:
            if change.labelled and change.plan is not None:
                labelled[change.service] = change.plan
        return World(
            topology=self.topology,
            grid=self.grid,
            step=self.step,
            pods=self.pods,
            plans=self.plans,
            labelled=labelled,
            nuisance={change.index: change.nuisance for change in self.changes},
            faults=self.faults,
            load_clean=clean,
            load_full=full,
            noise_sd=noise,
            error_bursts=self.recipe.error_bursts,
        )

    def _simulate_until_visible(self) -> dict[str, ServiceState]:
        rng = self.rng
        clean, full = self._load()
        noise = float(rng.uniform(*self.recipe.noise))
        for _ in range(4):
            seed = int(rng.integers(2**31))
            states = simulate(self._world(clean, full, noise), np.random.default_rng(seed))
            if self.mode == "none":
                if self._choose_outside_symptom(states):
                    return states
                raise Retry
            if _visible(states[self.symptom], self.symptom_metric, self.grid):
                return states
            if self.mode in SILENT_MODES or self.fault.magnitude >= _ceiling(self.mode):
                raise Retry
            self.fault.magnitude = min(self.fault.magnitude * 2.0, _ceiling(self.mode))
        raise Retry

    def _choose_outside_symptom(self, states: dict[str, ServiceState]) -> bool:
        options = [self.error_metric, "latency_ms"]
        self.rng.shuffle(options)
        for metric in options:
            if _visible(states[self.symptom], metric, self.grid):
                self.symptom_metric = metric
                self.telemetry.symptom_metric = metric
                return True
        return False

    # --- the document --------------------------------------------------------------------------

    def _assemble(self, states: dict[str, ServiceState]) -> Incident:
        rng = self.rng
        self.telemetry.symptom_metric = self.symptom_metric
        metrics = emit_series(rng, self.topology, states, self.grid, self.times, self.step, self.telemetry)
        chronological = sorted(self.changes, key=lambda change: change.start)
        numbers = naming.id_numbers(rng, len(chronological))
        ids = {
            change.index: self.ids.make(rng, number, change.service, change.kind)
            for change, number in zip(chronological, numbers, strict=True)
        }
        listed = chronological if rng.random() < 0.5 else list(reversed(chronological))
        changes = [self._change_document(change, ids[change.index]) for change in listed]
        culprit_id = ids[self.culprit.index] if self.culprit is not None else None
        self._describe(ids)
        document = {
            "version": 1,
            "incident": self._incident_document(),
            "topology": {"edges": [[edge.caller, edge.callee] for edge in self.topology.edges]},
            "changes": changes,
            "metrics": metrics,
        }
        return Incident(document=document, culprit=culprit_id, notes=self.notes, facts=self.facts)

    def _change_document(self, change: DraftChange, change_id: str) -> dict[str, Any]:
        rng = self.rng
        plan = change.plan
        assert plan is not None
        completed: float | None
        if change.style == "instant":
            completed = plan.end if self.habits.instant_completion == "same" and plan.end <= 0 else None
        else:
            completed = plan.completed_at()
        started = self.detected + timedelta(seconds=round(change.start))
        return {
            "id": change_id,
            "service": change.service,
            "namespace": self.namespace,
            "kind": change.kind,
            "started_at": started,
            "completed_at": None
            if completed is None
            else self.detected + timedelta(seconds=round(completed)),
            "from_version": change.from_version,
            "to_version": change.to_version,
            "author": naming.author(rng, change.kind),
            "description": naming.description(rng, change.kind, change.to_version),
            "rollback": self._rollback(change),
        }

    def _rollback(self, change: DraftChange) -> dict[str, Any] | None:
        rng = self.rng
        if change.kind in ("image", "model", "scale"):
            return {
                "type": "deployment",
                "name": change.service,
                "namespace": self.namespace,
                "revision": int(rng.integers(2, 400)),
            }
        if change.kind in ("config", "prompt", "corpus", "secret"):
            suffix = {"config": "config", "prompt": "prompts", "corpus": "index", "secret": "credentials"}[
                change.kind
            ]
            return {
                "type": "secret" if change.kind == "secret" else "configmap",
                "name": f"{change.service}-{suffix}",
                "namespace": self.namespace,
                "version": change.to_version,
            }
        if change.kind == "flag":
            return {"type": "flag", "name": naming.flag_name(rng)}
        return None

    def _incident_document(self) -> dict[str, Any]:
        rng = self.rng
        metric = self.symptom_metric
        suffix = {
            "error_rate": "HighErrorRate",
            "success_rate": "SuccessRateLow",
            "availability": "AvailabilitySLOBurn",
            "latency_ms": "LatencyHigh",
            "latency_p99_ms": "P99LatencyHigh",
            "ttft_ms": "TimeToFirstTokenHigh",
            "eval_score": "EvalScoreRegressed",
            "retrieval_precision": "RetrievalPrecisionLow",
            "hallucination_rate": "HallucinationRateHigh",
        }[metric]
        source = "eval" if metric == "eval_score" else ("alertmanager" if rng.random() < 0.9 else "manual")
        direction = {"hallucination_rate": "up"}.get(metric)
        symptom: dict[str, Any] = {"metric": metric}
        if direction:
            symptom["bad_direction"] = direction
        else:
            from incidents.bundle import WELL_KNOWN_BAD_DIRECTION

            symptom["bad_direction"] = WELL_KNOWN_BAD_DIRECTION[metric]
        stamp = self.detected.strftime("%Y-%m-%d")
        return {
            "id": f"inc-{stamp}-{self.symptom}-{int(rng.integers(16**4)):04x}",
            "detected_at": self.detected,
            "service": self.symptom,
            "namespace": self.namespace,
            "source": source,
            "labels": {
                "alertname": naming.camel(self.symptom) + suffix,
                "severity": "critical" if rng.random() < 0.6 else "warning",
            },
            "symptom": symptom,
        }

    def _describe(self, ids: dict[int, str]) -> None:
        notes = []
        culprit = self.culprit
        if culprit is not None:
            fault = self.fault
            effect = {
                "errors": f"errors +{fault.magnitude:.1%} on its exposed traffic",
                "latency": f"latency x{fault.magnitude:.1f} on its exposed traffic",
                "ttft": f"time to first token x{fault.magnitude:.1f} on its exposed traffic",
                "quality": f"answer quality -{fault.magnitude:.2f} on its exposed traffic",
                "never_reports": "its new version fails every request and never reports",
                "idle": "its new version takes requests, answers none and reports no work",
            }[self.mode]
            timing = (
                "creeping up since rollout"
                if fault.creep
                else f"from {_minutes(fault.onset)} before detection"
            )
            notes.append(
                f"culprit {ids[culprit.index]}: {culprit.kind} ({culprit.style}) on {culprit.service}, "
                f"{self.hops} hop(s) below {self.symptom}; {effect}, {timing}"
                + (" (flapping)" if fault.flap_period else "")
            )
        notes.append(
            f"symptom: {self.symptom_metric} at {self.symptom}"
            + (
                ""
                if self.telemetry.symptom_visibility == "normal"
                else f" ({self.telemetry.symptom_visibility} in the bundle)"
            )
        )
        for change in self.changes:
            label = ids[change.index]
            if change.part == "path":
                notes.append(
                    f"path: {label} ({change.kind}) on {change.service}, a caller between symptom and culprit"
                )
            elif change.part == "silent":
                what = (
                    "exporter broken" if change.nuisance.silent == "exporter" else "canary at weight 0 (idle)"
                )
                notes.append(
                    f"silent: {label} on {change.service}: new version does not report ({what}), harmless"
                )
            elif change.part == "coincident":
                notes.append(
                    f"coincident: {label} on {change.service} started shortly before the outside cause"
                )
            elif change.part == "autoscaler":
                notes.append(f"autoscaler: {label} scales {change.service} in response to the load")
            if change.nuisance.silent is None and change.service in self.topology.services:
                low = self.topology.services[change.service].low_traffic
                if low and change.style in POD_STYLES:
                    notes.append(f"low traffic: {label} on {change.service} serves almost nothing")
        for change, cpu, memory, extreme in self.resource_notes:
            if extreme:
                notes.append(
                    f"resources: new pods of {ids[change.index]} use cpu x{math.exp(cpu):.2g}, "
                    f"memory x{math.exp(memory):.2g} (harmless)"
                )
        self.notes = notes + self.notes
        culprit_style = culprit.style if culprit is not None else None
        self.facts.update(
            {
                "domain": self.topology.domain,
                "mode": self.mode,
                "cause": getattr(self, "cause", None) if culprit is None else "change",
                "hops": self.hops if culprit is not None else None,
                "symptom_service": self.symptom,
                "symptom_metric": self.symptom_metric,
                "culprit_kind": culprit.kind if culprit is not None else None,
                "culprit_style": culprit_style,
                "onset_s": round(self.onset, 1),
                "flapping": any(fault.flap_period > 0 for fault in self.faults),
                "n_changes": len(self.changes),
                "window_s": self.window,
                "step_s": self.step,
                "concurrent": self.recipe.concurrent,
                "preexisting": self.recipe.preexisting,
            }
        )


def by_service_of(changes: list[DraftChange], name: str) -> list[DraftChange]:
    return [change for change in changes if change.service == name]


def _stall(plan: Plan, pods: list[Pod], rng: np.random.Generator) -> None:
    """A rolling update still progressing at detection: the pods it has not made yet do not exist."""
    made = sorted((pod for pod in pods if pod.change_index == plan.change_index), key=lambda pod: pod.created)
    if plan.end <= 0 and len(made) >= 2:
        keep = int(rng.integers(1, len(made)))
        cutoff = made[keep].created
        for pod in made[keep:]:
            pods.remove(pod)
        for pod in pods:
            # Old pods that only the removed new pods would have replaced keep serving.
            if pod.change_index is None and pod.created < -1e6 and cutoff <= pod.gone < NEVER:
                pod.gone = NEVER
        plan.steps = [(when, share) for when, share in plan.steps if when < cutoff]
    plan.end = NEVER


def _looks_like_image(version: str) -> bool:
    return not any(
        part in version
        for part in (
            "instruct",
            "bge",
            "e5-",
            "gte",
            "nomic",
            "reranker",
            "guard",
            "llama",
            "gemma",
            "minilm",
            "shield",
            "mistral",
            "qwen",
        )
    )


def _normalised(weights: list[float]) -> np.ndarray:
    array = np.array(weights, dtype=float)
    return array / array.sum()


def _ceiling(mode: str) -> float:
    return {"errors": 0.97, "latency": 40.0, "ttft": 40.0, "quality": 0.6}.get(mode, 1.0)


def _visible(state: ServiceState, metric: str, grid: np.ndarray) -> bool:
    """Did the symptom really happen at detection (last few minutes, in the truth, not the bundle)?"""
    recent = grid >= max(grid[0], -300.0)
    if not recent.any():
        return False
    service = state.service
    if metric in ("error_rate", "success_rate", "availability"):
        full = (state.dev_err + service.error_base)[recent].mean()
        clean = (state.dev_err_clean + service.error_base)[recent].mean()
        return bool(full - clean >= max(0.01, clean))
    if metric in ("latency_ms", "latency_p99_ms"):
        full = (state.dev_lat + service.latency_ms)[recent].mean()
        clean = (state.dev_lat_clean + service.latency_ms)[recent].mean()
        return bool(full >= 1.25 * clean)
    if metric == "ttft_ms":
        weights = np.array([c.weight for c in state.cohorts])
        full_ttft = (weights * np.array([c.ttft for c in state.cohorts])).sum(0)
        clean_ttft = (weights * np.array([c.ttft_clean for c in state.cohorts])).sum(0)
        return bool(full_ttft[recent].mean() >= 1.25 * clean_ttft[recent].mean())
    drop = (state.dq_clean - state.dq)[recent].mean()
    if metric == "hallucination_rate":
        return bool(0.6 * drop >= 0.025)
    return bool(drop >= 0.04)
