"""Evidence for and against each candidate change, and the feature rows the model scores.

For every change, in order of how directly it speaks to the change:
- version: its new version against its old version over the same window, pooled over
  pods (or, when the old version stopped reporting at the change, against the old
  version's last values before it). Both versions call the same dependencies, so a
  difference is the change's own doing. Fresh pods' first minutes are left out.
- silent: its service reports per version, but the new version never reports (or serves
  no requests): a broken rollout often looks like this.
- before/after: the changed service's own series after the change against before it,
  discounted when a service it calls degraded at the same time (the fault may come from
  further down).
- callers: what the service's callers measure on their calls to it, before and after.
- timing: when it started relative to the symptom's estimated onset; a change that
  started after the onset, or while the symptom was already degraded, cannot explain it.
- graph: where its service sits relative to the symptom's (same, callee at depth d,
  caller, unrelated, unknown).

Every shift is weighed by its signal family against the symptom's (see signals.py).
"Not measured" leaves a column at zero: neutral, never exoneration; "looked and clean"
sets the measured flag with no positive strength, which the model scores against.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from attribution.case import Case, ChangeData
from attribution.signals import HEALTH_FAMILIES, Family, family_weight, symptom_family
from attribution.stats import Effect, compare, fast_median, onset, paired, sample_step
from attribution.telemetry import (
    Series,
    Telemetry,
    level_view,
    merged,
    pooled,
    values_after,
    values_before,
    window,
)

Basis = Literal["version", "before-after", "callers", "symptom"]
RELATIONS: tuple[str, ...] = ("same", "callee", "caller", "unrelated", "unknown")
# Kinds that replace pods, so that the service's latency and resources pass through a warm-up.
POD_KINDS = frozenset({"image", "model", "scale", "infra", "other"})
PATH_ONSET_POINTS = 8  # a series dating a flat symptom from its path needs this many points
LOCAL_S = 600.0  # the minutes around a change's start in which its own step shows
WARMUP_S = 300.0  # a fresh pod's first minutes (warm-up latency, cold caches) are not evidence
BEFORE_S = 1800.0  # how far back a before-window reaches (at least 4 samples)
SILENT_GRACE_S = 120.0  # a new version gets this long to report before its silence counts
DEPTH_DISCOUNT = 0.85  # a degradation k hops further down explains this much of it per hop
MEASURED_WEIGHT = 0.5  # a family counts as 'looked at' when its weight reaches this
REFERENCE_FLOOR = 0.1
LOAD_FROM, LOAD_FULL = 1.1, 1.6  # a traffic surge explains shifts from this ratio, fully from that one
WARMING_FAMILIES = frozenset({"latency", "resource"})  # what a fresh pod's first minutes distort

FEATURE_NAMES: tuple[str, ...] = (
    "relation_same",
    "relation_callee",
    "callee_extra_depth",
    "relation_caller",
    "relation_unrelated",
    "relation_unknown",
    "after_detection",
    "after_onset",
    "pre_degraded",
    "log_min_to_onset",
    "version_worse",
    "version_better",
    "version_measured",
    "silent_new_version",
    "before_after_worse",
    "before_after_better",
    "before_after_measured",
    "callers_worse",
    "callers_better",
    "callers_measured",
    "upstream_worse",
    "symptom_worse_after",
    "symptom_better_after",
    "symptom_flat_after",
    "started_before_window",
    "silent_and_callers_worse",
    "own_pre_degraded",
    "own_worse_at_onset",
    "own_magnitude",
    "before_window_no_onset",
    "log_min_after_onset",
    "old_version_worse",
    "symptom_step",
    "after_onset_point",
    "version_worse_other_family",
    "other_family_worse",
)
FEATURE_INDEX: dict[str, int] = {name: index for index, name in enumerate(FEATURE_NAMES)}
NULL_FEATURE_NAMES: tuple[str, ...] = (
    "bias",
    "log_n_changes",
    "traffic_surge",
    "unexplained_origin",
    "onset_known",
)


@dataclass(slots=True)
class Finding:
    """One comparison behind a feature, kept for the reasons text."""

    basis: Basis
    metric: str
    family: Family
    weight: float
    effect: Effect
    detail: str = ""
    paired: bool = True  # a version comparison over the same instants (not a full switch)
    ceiling: float | None = None  # the metric was compared as its failure share (ceiling - value)

    @property
    def score(self) -> float:
        return self.weight * self.effect.strength


@dataclass(slots=True)
class Evidence:
    change: ChangeData
    relation: str
    depth: int
    minutes_before_detection: float
    minutes_before_onset: float
    onset_known: bool
    after_onset: bool
    after_onset_point: bool = False  # started after the symptom's first bad point, within the tolerance
    pre_degraded: float = 0.0
    before_window: bool = False  # started before the bundle's first data point: no before-window anywhere
    own_pre_degraded: Finding | None = None  # the service was already degrading before the change
    at_onset: Finding | None = None  # the service worsened when the symptom began (a delayed effect)
    at_onset_own_family: Finding | None = None  # the same in the symptom's own signal family
    version: Finding | None = None
    version_own_family: Finding | None = None  # the strongest version finding in the symptom's family
    version_measured: float = 0.0
    version_clean: list[str] = field(default_factory=list)
    silent: str | None = None
    before_after: Finding | None = None
    before_after_own_family: Finding | None = None
    before_after_measured: float = 0.0
    explained_by: tuple[str, Finding] | None = None
    discount: float = 0.0
    callers: Finding | None = None
    callers_own_family: Finding | None = None
    callers_measured: float = 0.0
    upstream: tuple[str, Finding] | None = None  # a caller on the symptom's path that worsened then
    symptom: Finding | None = None
    resource: Finding | None = None  # the largest resource shift seen (a tie-breaker at most)
    old_version: Finding | None = None  # the old version's own shift at the change: a common cause
    version_discount: float = 0.0  # how much a callee degrading then explains a full-switch comparison
    symptom_step: float = 0.0  # the symptom's step in the minutes around the change's start


@dataclass(slots=True)
class Incident:
    """What was learned about the incident as a whole (onset, load, unexplained degradation)."""

    symptom_family: Family
    onset: float
    onset_known: bool
    tolerance: float
    symptom_series: str | None
    onset_source: str | None  # the series that dated the onset ('metric of service')
    traffic: tuple[str, Effect] | None
    unexplained: tuple[str, Finding] | None
    null_features: np.ndarray


def graph_relations(edges: list[tuple[str, str]], symptom_service: str | None) -> dict[str, tuple[str, int]]:
    """Relation of every known service to the symptom's service: same, callee at depth d, or caller."""
    if symptom_service is None:
        return {}
    callees: dict[str, list[str]] = {}
    callers: dict[str, list[str]] = {}
    for caller, callee in edges:
        callees.setdefault(caller, []).append(callee)
        callers.setdefault(callee, []).append(caller)
    relations: dict[str, tuple[str, int]] = {symptom_service: ("same", 0)}
    for adjacency, name in ((callees, "callee"), (callers, "caller")):
        queue: deque[tuple[str, int]] = deque([(symptom_service, 0)])
        while queue:
            node, depth = queue.popleft()
            for neighbour in adjacency.get(node, []):
                if neighbour not in relations:
                    relations[neighbour] = (name, depth + 1)
                    queue.append((neighbour, depth + 1))
    return relations


def downstream(edges: list[tuple[str, str]], service: str) -> list[tuple[str, int]]:
    """Every service `service` calls, directly or not, with its depth (breadth first)."""
    callees: dict[str, list[str]] = {}
    for caller, callee in edges:
        callees.setdefault(caller, []).append(callee)
    found: dict[str, int] = {service: 0}
    queue: deque[str] = deque([service])
    while queue:
        node = queue.popleft()
        for nxt in callees.get(node, []):
            if nxt not in found:
                found[nxt] = found[node] + 1
                queue.append(nxt)
    return [(name, depth) for name, depth in found.items() if depth > 0]


class _Extractor:
    def __init__(self, case: Case) -> None:
        self.case = case
        self.telemetry = Telemetry(case)
        self.family = symptom_family(case.symptom_metric)
        self.relations = graph_relations(case.edges, case.symptom_service)
        self.before_s = max(BEFORE_S, 4 * self.telemetry.step)
        self._version_cache: dict[
            str, tuple[Finding | None, Finding | None, float, list[str], frozenset[str]]
        ] = {}
        self.until = float("inf")  # the end of the symptom's bad episode, when it recovered before the end
        self.load = 0.0  # how much of any before/after shift a traffic surge at the onset explains
        self.symptom_bad: tuple[str, float, float] | None = (
            None  # a series dating the onset: level before, after
        )
        self._before_after_cache: dict[
            tuple[str, float, bool, frozenset[str], bool], tuple[Finding | None, float]
        ] = {}

    # --- the symptom -------------------------------------------------------------------
    def symptom_series(self) -> list[tuple[str, Series]]:
        """The symptom as series, best first: its service's own (or pooled pods), else as its callers see it.

        The named metric comes first; other series of the symptom's family follow (one of
        them may date the onset more finely).
        """
        case, telemetry = self.case, self.telemetry
        if case.symptom_service is None:
            return []
        own = telemetry.metrics(case.symptom_service)
        seen = telemetry.seen_by_callers.get(case.symptom_service, {})
        wanted = case.symptom_metric
        candidates: list[list[Series]] = []
        if wanted:
            candidates += [own.get(wanted, []), seen.get(wanted, [])]
        for source in (own, seen):
            candidates += [
                found
                for name, found in sorted(source.items())
                if found and family_weight(found[0].family, self.family) >= 1.0 and name != wanted
            ]
        return [(found[0].name, _merged_series(found)) for found in candidates if found]

    def path_series(self) -> list[Series]:
        """Health series that can date a flat or absent symptom, nearest first.

        The symptom's service's other health families, then its callees' symptom-family
        series, by depth: a symptom the alert saw usually began when its origin degraded.
        """
        case, telemetry = self.case, self.telemetry
        if case.symptom_service is None:
            return []
        out: list[Series] = []
        own = telemetry.metrics(case.symptom_service)
        for _, found in sorted(own.items()):
            if (
                found
                and found[0].family in HEALTH_FAMILIES
                and family_weight(found[0].family, self.family) < 1.0
            ):
                out.append(_merged_series(found))
        callees = sorted(
            (depth, service) for service, (relation, depth) in self.relations.items() if relation == "callee"
        )
        for _, service in callees:
            for source in (telemetry.seen_by_callers.get(service, {}), telemetry.metrics(service)):
                for _, found in sorted(source.items()):
                    if (
                        found
                        and family_weight(found[0].family, self.family) >= 1.0
                        and found[0].family != "resource"
                    ):
                        out.append(_merged_series(found))
        return out

    def onset(self, symptom: Series | None) -> tuple[float, bool, float]:
        """Estimated symptom onset, whether the data showed it, and a tolerance in seconds.

        Also notes when the symptom was last bad: a symptom that recovered before
        detection (a transient) bounds the after-window of every before/after comparison.
        """
        case = self.case
        if symptom is None or symptom.times.size < 3:
            return case.detected_at, False, 120.0
        visible = symptom.times <= case.detected_at + 600
        times, values = symptom.times[visible], symptom.values[visible]
        if times.size < 3:
            return case.detected_at, False, 120.0
        reference = self.telemetry.reference.get(symptom.name, 0.0) if symptom.family == "errors" else 0.0
        when, _, last_bad = onset(times, values, symptom.bad_sign, REFERENCE_FLOOR * reference)
        if not np.isfinite(when):
            return case.detected_at, False, 120.0
        self.until = last_bad + sample_step(times)
        before = values_before([symptom], when - 0.5 * sample_step(times), self.before_s)
        after = values_after([symptom], when, self.until)
        if before.size and after.size:
            self.symptom_bad = (symptom.name, fast_median(before), fast_median(after))
        return when, True, 60.0

    # --- comparisons -------------------------------------------------------------------
    def _effect(self, later: np.ndarray, earlier: np.ndarray, series: Series) -> Effect | None:
        reference = self.telemetry.reference.get(series.name, 0.0) if series.family == "errors" else 0.0
        return compare(later, earlier, series.bad_sign, reference)

    def _versions_effect(self, versions: _Versions, series: Series) -> Effect | None:
        reference = self.telemetry.reference.get(series.name, 0.0) if series.family == "errors" else 0.0
        if versions.paired:
            return paired(versions.new, versions.old, series.bad_sign, versions.bin_s, reference)
        return compare(versions.new[1], versions.old[1], series.bad_sign, reference)

    def before_after(
        self,
        service: str,
        split: float,
        source: dict[str, list[Series]] | None = None,
        rollout: bool = False,
        skip: frozenset[str] = frozenset(),
        own_family: bool = False,
    ) -> tuple[Finding | None, float]:
        """The service's strongest family-weighted shift at `split` and how relevant what was compared is.

        Own series unless `source`; metrics in `skip` (compared per version already) are
        left out. With `rollout` (the split is a change that replaces pods on this
        service), latency and resource series skip the first minutes after it: fresh
        pods warm up. With `own_family`, only the symptom's own signal family is compared.
        """
        key = (service, split, rollout, skip, own_family)
        if source is None and key in self._before_after_cache:
            return self._before_after_cache[key]
        best: Finding | None = None
        measured = 0.0
        for name, found in sorted(
            (source if source is not None else self.telemetry.metrics(service)).items()
        ):
            family = found[0].family
            weight = family_weight(family, self.family)
            if weight <= 0 or name in skip or (own_family and weight < 1.0):
                continue
            view = level_view(found)
            start = split
            if rollout and family in WARMING_FAMILIES:
                start = split + min(WARMUP_S, 0.5 * max(self.telemetry.end - split, 0.0))
            later = values_after(view, start, self.until if self.until > split else float("inf"))
            effect = self._effect(later, values_before(view, split, self.before_s), found[0])
            if effect is None:
                continue
            measured = max(measured, _health_weight(family, weight))
            finding = Finding("before-after", name, family, weight, effect, ceiling=found[0].ceiling)
            if best is None or finding.score > best.score:
                best = finding
        if source is None:
            self._before_after_cache[key] = (best, measured)
        return best, measured

    def version_comparison(
        self, change: ChangeData
    ) -> tuple[Finding | None, Finding | None, float, list[str], frozenset[str]]:
        """New version against old version of the changed service.

        Returns the strongest finding, the strongest in the symptom's own family, how
        relevant the compared families were, the health metrics that looked clean, and
        every metric compared.
        """
        metrics = self.telemetry.metrics(change.service)
        best: Finding | None = None
        own_family: Finding | None = None
        measured = 0.0
        clean: list[str] = []
        compared: set[str] = set()
        for name, found in sorted(metrics.items()):
            family = found[0].family
            weight = family_weight(family, self.family)
            if weight <= 0:
                continue
            split = _version_split(found, change)
            if split is None:
                continue
            new, old, label = split
            versions = _aligned(new, old, change.started, self.before_s)
            effect = self._versions_effect(versions, found[0])
            if effect is None:
                continue
            compared.add(name)
            if (
                versions.young and family in WARMING_FAMILIES
            ):  # only warm-up minutes of the new version so far
                weight = min(weight, family_weight("resource", self.family))
            relevance = _health_weight(family, weight)
            measured = max(measured, relevance)
            if relevance >= MEASURED_WEIGHT and effect.strength < 0.2:
                clean.append(name)
            if not versions.paired:
                # A full switch (the old version stopped at the change) compares the old
                # version's last values with the new one's first: confounded by whatever
                # else happened then (load), like a before/after comparison.
                label += ", a full switch (old version before, new version after)"
            finding = Finding(
                "version", name, family, weight, effect, label, versions.paired, found[0].ceiling
            )
            if best is None or finding.score > best.score:
                best = finding
            if weight >= 1.0 and (own_family is None or finding.score > own_family.score):
                own_family = finding
        return best, own_family, measured, clean, frozenset(compared)

    def old_version_shift(self, change: ChangeData, split: float | None = None) -> Finding | None:
        """The old version's own strongest shift at the change, or at `split` (it kept serving).

        The change did not touch the old version's pods: when they degrade as much as the
        service does, something both versions share (a dependency, load) is the cause.
        """
        best: Finding | None = None
        for name, found in sorted(self.telemetry.metrics(change.service).items()):
            family = found[0].family
            weight = _health_weight(family, family_weight(family, self.family))
            if weight < MEASURED_WEIGHT:
                continue
            old = _old_version(found, change)
            if not old:
                continue
            at = change.started if split is None else split
            grace = SILENT_GRACE_S if split is None else 0.0
            after = values_after(old, at + grace, self.until if self.until > at else float("inf"))
            if after.size < 2:
                continue
            effect = self._effect(after, values_before(old, at, self.before_s), found[0])
            if effect is None:
                continue
            finding = Finding(
                "before-after", name, family, weight, effect, "old version", ceiling=found[0].ceiling
            )
            if best is None or finding.score > best.score:
                best = finding
        return best

    def silent_new_version(self, change: ChangeData) -> str | None:
        """Why the new version counts as silent, if it does.

        Its service reports health per version (the old version does), but the new
        version reports no health series after the change, or reports that it serves
        (almost) no requests.
        """
        if not change.to_version:
            return None
        by_version: dict[str, list[Series]] = {}
        for found in self.telemetry.metrics(change.service).values():
            for series in found:
                if series.version is not None:
                    by_version.setdefault(series.version, []).append(series)
        if change.to_version in by_version and len(by_version) < 2:
            return None
        if change.to_version not in by_version and (
            not change.from_version or change.from_version not in by_version
        ):
            return None  # the telemetry is not labelled with this change's versions
        deadline = change.started + SILENT_GRACE_S
        others = [s for v, found in by_version.items() if v != change.to_version for s in found]
        others_health = [s for s in others if s.family not in ("resource", "traffic") and s.last >= deadline]
        if not others_health or self.telemetry.end < deadline:
            return None
        new = [s for s in by_version.get(change.to_version, []) if s.last >= change.started]
        if not any(s.family not in ("resource", "traffic") for s in new):
            traffic = [s for s in new if s.family == "traffic"]
            if not traffic:
                return f"version {change.to_version} of {change.service} never reported health metrics while the old version did"
        traffic = [s for s in new if s.family == "traffic"]
        reference = pooled(
            [s for s in others if s.family == "traffic"], change.started, self.telemetry.end + 1
        )
        served = pooled(traffic, deadline, self.telemetry.end + 1)
        if (
            traffic
            and reference.size
            and served.size
            and float(np.median(served)) <= 0.02 * float(np.median(reference))
        ):
            return f"version {change.to_version} of {change.service} serves no requests while the old version does"
        if not any(s.family not in ("resource", "traffic") for s in new):
            return f"version {change.to_version} of {change.service} reports no health metrics while the old version does"
        return None

    def explained_below(
        self, service: str, split: float, own: Finding | None
    ) -> tuple[tuple[str, Finding] | None, float]:
        """How much of the service's own shift a degradation below it explains, and which one.

        Only a callee's shift in the same signal family explains it (a slower database
        does not explain a rise in errors), discounted by depth, and only as far as it is
        at least as strong as the service's own: a callee that barely moved explains little.
        """
        if not self.case.edges or own is None or own.score <= 0:
            return None, 0.0
        best: tuple[str, Finding] | None = None
        discount = 0.0
        for callee, depth in downstream(self.case.edges, service):
            sources = [self.telemetry.metrics(callee), self.telemetry.seen_by_callers.get(callee, {})]
            for source in sources:
                same = {name: found for name, found in source.items() if found[0].family == own.family}
                if not same:
                    continue
                found, _ = self.before_after(callee, split, same)
                if found is None or found.score <= 0:
                    continue
                value = (
                    _explained_share(found, own) * min(found.score / 0.5, 1.0) * DEPTH_DISCOUNT ** (depth - 1)
                )
                if value > discount:
                    discount, best = value, (callee, found)
        return best, float(min(discount, 1.0))

    def already_degrading(self, service: str, split: float) -> Finding | None:
        """The service's strongest shift in the minutes before `split` against the half hour before those."""
        settle = max(300.0, 2 * self.telemetry.step)
        best: Finding | None = None
        for name, found in sorted(self.telemetry.metrics(service).items()):
            family = found[0].family
            weight = _health_weight(family, family_weight(family, self.family))
            if weight < MEASURED_WEIGHT:
                continue
            view = level_view(found)
            recent = values_before(view, split, settle)
            earlier = values_before(view, split - settle, self.before_s)
            effect = self._effect(recent, earlier, found[0])
            if effect is None:
                continue
            finding = Finding("before-after", name, family, weight, effect, ceiling=found[0].ceiling)
            if best is None or finding.score > best.score:
                best = finding
        return best

    def upstream_on_path(self, service: str, split: float) -> tuple[str, Finding] | None:
        """The strongest shift at `split` among the service's direct callers on the symptom's path.

        A callee whose change broke it shows first in the callers that measure what it
        does (a corpus change in its caller's retrieval precision).
        """
        best: tuple[str, Finding] | None = None
        for caller, callee in self.case.edges:
            if callee != service or caller == service:
                continue
            if self.relations.get(caller, ("unrelated", 0))[0] not in ("same", "callee"):
                continue
            found, _ = self.before_after(caller, split)
            if found is None or found.score <= 0:
                continue
            if best is None or found.score > best[1].score:
                best = (caller, found)
        return best

    def version_score(self, change: ChangeData) -> float:
        """The change's version-comparison score (cached per change)."""
        if change.id not in self._version_cache:
            self._version_cache[change.id] = self.version_comparison(change)
        found = self._version_cache[change.id][0]
        return max(found.score, 0.0) if found is not None else 0.0

    def traffic_surge(self, onset: float) -> tuple[str, Effect] | None:
        """The strongest rise in requests at the onset into the symptom's service (load can explain a symptom).

        Load arrives at the symptom's service from its callers; a callee's request count
        also moves with retries and fan-out, so callees are read only when neither the
        symptom's service nor its callers count requests.
        """
        upstream: list[tuple[str, Effect]] = []
        downstream_: list[tuple[str, Effect]] = []
        for service, metrics in self.telemetry.own.items():
            relation = self.relations.get(service, ("unrelated", 0))[0] if self.relations else "same"
            if relation not in ("same", "caller", "callee"):
                continue
            for found in metrics.values():
                if found[0].family != "traffic":
                    continue
                view = level_view(found)
                effect = compare(values_after(view, onset), values_before(view, onset, self.before_s), 1.0)
                if effect is None or effect.before_level <= 0:
                    continue
                (upstream if relation in ("same", "caller") else downstream_).append((service, effect))
        found_surges = upstream or downstream_
        return max(found_surges, key=lambda item: _surge(item[1])) if found_surges else None

    def unexplained_origin(self, onset: float) -> tuple[str, Finding] | None:
        """A degraded service on the symptom's path with no change on it or below it: load or a dependency."""
        case = self.case
        if not case.edges or case.symptom_service is None:
            return None
        changed = {c.service for c in case.changes if c.started <= onset + 60}
        best: tuple[str, Finding] | None = None
        for service, (relation, _) in self.relations.items():
            if relation != "callee":
                continue
            below = {name for name, _ in downstream(case.edges, service)}
            if service in changed or below & changed:
                continue
            found, _ = self.before_after(service, onset)
            if found is not None and found.score > 0 and (best is None or found.score > best[1].score):
                best = (service, found)
        return best


def _merged_series(found: list[Series]) -> Series:
    """One series for a metric of a service: its service-level series, else its pods or versions merged."""
    times, values = merged(level_view(found))
    first = found[0]
    return Series(
        first.name,
        first.family,
        first.service,
        None,
        None,
        None,
        first.bad_sign,
        times,
        values,
        first.ceiling,
    )


def _surge(effect: Effect) -> float:
    return max(effect.strength, 0.0) * float(np.log(max(effect.ratio, 1.0)))


def _load_share(traffic: tuple[str, Effect] | None) -> float:
    """How much a traffic surge at the onset explains before/after shifts (0..1).

    Load raises latency and errors everywhere at once. Traffic wanders by a few per
    cent around any change, so a surge counts from 1.1x, fully from 1.6x (thresholds
    chosen on the validation sets: surges in load incidents ran 1.15-3x, elsewhere
    at most 1.12x).
    """
    if traffic is None or traffic[1].strength <= 0 or traffic[1].before_level <= 0:
        return 0.0
    rise = float(np.log(max(traffic[1].ratio, 1.0)))
    low, high = np.log(LOAD_FROM), np.log(LOAD_FULL)
    return float(np.clip((rise - low) / (high - low), 0.0, 1.0) * traffic[1].strength)


def _explained_share(below: Finding, own: Finding) -> float:
    """How much of the service's own shift a callee's shift can account for (0..1).

    The same metric name shares units, so absolute rises compare (a callee 30 ms slower
    explains a caller 30 ms slower, not one 800 ms slower); otherwise relative rises do.
    """
    if below.metric == own.metric:
        own_rise = abs(own.effect.after_level - own.effect.before_level)
        below_rise = abs(below.effect.after_level - below.effect.before_level)
    else:
        own_rise = abs(np.log(max(own.effect.ratio, 1e-9)))
        below_rise = abs(np.log(max(below.effect.ratio, 1e-9)))
    if own_rise <= 0:
        return 1.0
    return float(min(below_rise / own_rise, 1.0))


def _health_weight(family: Family, weight: float) -> float:
    """A resource or traffic series never makes a change 'looked at and clean'."""
    return 0.0 if family in ("resource", "traffic") else weight


def _version_split(found: list[Series], change: ChangeData) -> tuple[list[Series], list[Series], str] | None:
    """(new-version series, old-version series, description) for one metric of the changed service."""
    versions = {s.version for s in found if s.version is not None}
    if change.to_version and change.to_version in versions:
        new = [s for s in found if s.version == change.to_version]
        if change.from_version and change.from_version in versions:
            old = [s for s in found if s.version == change.from_version]
        else:
            old = [s for s in found if s.version is not None and s.version != change.to_version]
        if not old:
            return None
        old_name = change.from_version if change.from_version in versions else "the other versions"
        return new, old, f"version {change.to_version} against {old_name}" + _pods(new, old)
    pods = [s for s in found if s.pod is not None and s.version is None]
    if not pods:
        return None
    step = max(float(np.median(np.diff(s.times))) if s.times.size > 1 else 60.0 for s in pods)
    fresh = [s for s in pods if s.first >= change.started - step]
    old = [s for s in pods if s.first < change.started - step]
    if not fresh or not old:
        return None
    return fresh, old, "pods started after the change against older pods" + _pods(fresh, old)


def _old_version(found: list[Series], change: ChangeData) -> list[Series]:
    """The series of the version the change replaced (whether or not the new one reports)."""
    versions = {s.version for s in found if s.version is not None}
    if change.from_version and change.from_version in versions:
        return [s for s in found if s.version == change.from_version]
    if change.to_version and change.to_version in versions:
        return [s for s in found if s.version is not None and s.version != change.to_version]
    return []


def _pods(new: list[Series], old: list[Series]) -> str:
    new_pods = len({s.pod for s in new if s.pod})
    old_pods = len({s.pod for s in old if s.pod})
    return f" ({new_pods} pods against {old_pods})" if new_pods and old_pods else ""


@dataclass(slots=True)
class _Versions:
    """New- and old-version samples of one metric, ready to compare."""

    new: tuple[np.ndarray, np.ndarray]  # times, values
    old: tuple[np.ndarray, np.ndarray]
    paired: bool  # both versions reported over the same instants
    young: bool  # all the new version has shown so far is its warm-up
    bin_s: float


def _sample(series: list[Series], low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    times, values = [], []
    for s in series:
        lo, hi = np.searchsorted(s.times, [low, high], side="left")
        times.append(s.times[lo:hi])
        values.append(s.values[lo:hi])
    if not times:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(times), np.concatenate(values)


def _aligned(new: list[Series], old: list[Series], started: float, before_s: float) -> _Versions:
    """New- and old-version samples over the same window.

    The window starts when the new version's warm-up is over (at most half its life so
    far is skipped) and ends when the old version stopped reporting: both versions then
    served the same traffic and called the same dependencies. When the old version
    stopped at the change (a full switch), its last values before the change stand in.
    """
    since = float("inf")
    for s in new:
        begin = max(s.first, started)
        since = min(since, begin + min(WARMUP_S, 0.5 * max(s.last - begin, 0.0)))
    young = all(s.last - max(s.first, started) < 2 * WARMUP_S for s in new) and _fading(new, old, started)
    bin_s = max(sample_step(s.times) for s in [*new, *old])
    old_last = max((s.last for s in old), default=started)
    if old_last > since:
        newer = _sample(new, since, old_last + 1)
        older = _sample(old, since, old_last + 1)
        if newer[1].size >= 2 and older[1].size >= 2:
            return _Versions(newer, older, True, young, bin_s)
    newer = _sample(new, since, float("inf"))
    before = values_before(old, started, before_s)
    return _Versions(newer, (np.zeros(before.size), before), False, young, bin_s)


def _fading(new: list[Series], old: list[Series], started: float) -> bool:
    """Whether the new version's excess over the old one fades with its age (a warm-up, not a fault)."""
    times = np.concatenate([s.times for s in new]) if new else np.zeros(0)
    values = np.concatenate([s.values for s in new]) if new else np.zeros(0)
    keep = times >= started
    times, values = times[keep], values[keep]
    reference = pooled(old, started, float("inf"))
    if reference.size == 0:
        reference = np.concatenate([s.values for s in old]) if old else np.zeros(0)
    if times.size < 4 or reference.size == 0:
        return True  # too little to tell: assume the worst case, a warm-up
    sign = new[0].bad_sign
    level = fast_median(reference)
    middle = fast_median(times)
    early = sign * (fast_median(values[times <= middle]) - level)
    late = sign * (fast_median(values[times > middle]) - level) if (times > middle).any() else early
    return early > 0 and late < 0.5 * early


def _signed_log(value: float) -> float:
    return float(np.sign(value) * np.log1p(abs(value)))


def extract(case: Case) -> tuple[np.ndarray, list[Evidence], Incident]:
    """Feature rows (FEATURE_NAMES, one per change), the evidence behind them, and the incident view."""
    ex = _Extractor(case)
    candidates = ex.symptom_series()
    symptom = candidates[0] if candidates else None
    symptom_series = symptom[1] if symptom else None
    onset, onset_known, tolerance, onset_source = _find_onset(ex, [series for _, series in candidates])

    traffic = ex.traffic_surge(onset) if onset_known else None
    ex.load = _load_share(traffic)
    unexplained = ex.unexplained_origin(onset) if onset_known else None
    rows = np.zeros((len(case.changes), len(FEATURE_NAMES)))
    evidence: list[Evidence] = []
    for row, change in zip(rows, case.changes, strict=True):
        item = _change_evidence(ex, change, onset, onset_known, tolerance, symptom_series)
        evidence.append(item)
        _fill(row, item, ex.load)
    # A degradation with no change on or below it speaks for 'no culprit' only as far as
    # no change has evidence of its own.
    own = [FEATURE_INDEX["version_worse"], FEATURE_INDEX["before_after_worse"]]
    eligible = rows[:, FEATURE_INDEX["after_onset"]] + rows[:, FEATURE_INDEX["after_detection"]] == 0
    strongest = float(rows[np.ix_(eligible, own)].max()) if eligible.any() else 0.0
    null = np.array(
        [
            1.0,
            float(np.log(max(len(case.changes), 1))),
            ex.load,
            max(unexplained[1].score, 0.0) * (1.0 - min(strongest, 1.0)) if unexplained else 0.0,
            float(onset_known),
        ]
    )
    incident = Incident(
        symptom_family=ex.family,
        onset=onset,
        onset_known=onset_known,
        tolerance=tolerance,
        symptom_series=symptom[0] if symptom else None,
        onset_source=onset_source,
        traffic=traffic,
        unexplained=unexplained,
        null_features=null,
    )
    return rows, evidence, incident


def _find_onset(ex: _Extractor, symptom: list[Series]) -> tuple[float, bool, float, str | None]:
    """The symptom's onset (time, known, tolerance) and the series that dated it ('metric of service').

    The symptom's own series first (a coarse or short named series may not show it, another
    of its family may); when the symptom is flat or absent, what degraded on its path.
    """
    for series in symptom:
        onset, known, tolerance = ex.onset(series)
        if known:
            return onset, known, tolerance, f"{series.name} of {series.service}"
    for series in ex.path_series():
        if series.times.size < PATH_ONSET_POINTS:
            continue
        onset, known, tolerance = ex.onset(series)
        if known:
            return onset, known, max(tolerance, 2 * ex.telemetry.step), f"{series.name} of {series.service}"
    return ex.case.detected_at, False, 120.0, None


def _change_evidence(
    ex: _Extractor,
    change: ChangeData,
    onset: float,
    onset_known: bool,
    tolerance: float,
    symptom: Series | None,
) -> Evidence:
    case = ex.case
    if case.symptom_service is not None and change.service == case.symptom_service:
        relation, depth = "same", 0
    elif not ex.relations or not case.edges:
        relation, depth = "unknown", 0
    else:
        relation, depth = ex.relations.get(change.service, ("unrelated", 0))
    item = Evidence(
        change=change,
        relation=relation,
        depth=depth,
        minutes_before_detection=(case.detected_at - change.started) / 60.0,
        minutes_before_onset=(onset - change.started) / 60.0,
        onset_known=onset_known,
        after_onset=change.started > onset + tolerance,
        # The onset is the first bad point, which summarises the step before it: a change
        # started after it cannot have made it bad, whatever the tolerance forgives.
        after_onset_point=onset_known and onset < change.started <= onset + tolerance,
    )
    if change.started > case.detected_at:
        return item
    item.before_window = change.started <= ex.telemetry.start
    ex.version_score(change)
    item.version, item.version_own_family, item.version_measured, item.version_clean, compared = (
        ex._version_cache[change.id]
    )
    item.silent = ex.silent_new_version(change)
    item.old_version = ex.old_version_shift(change)
    own_version = item.version_own_family
    if own_version is not None and not own_version.paired and own_version.score > 0:
        _, item.version_discount = ex.explained_below(change.service, change.started, own_version)
    rollout = change.kind in POD_KINDS
    # A metric compared per version is not compared again before/after: the version
    # comparison is not confounded by whatever else changed at the same time.
    item.before_after, item.before_after_measured = ex.before_after(
        change.service, change.started, rollout=rollout, skip=compared
    )
    item.before_after_own_family = _own_family(item.before_after)
    if item.before_after_own_family is None:
        item.before_after_own_family, _ = ex.before_after(
            change.service, change.started, rollout=rollout, skip=compared, own_family=True
        )
    seen = ex.telemetry.seen_by_callers.get(change.service)
    if seen:
        item.callers, _ = ex.before_after(change.service, change.started, seen)
        item.callers_own_family = _own_family(item.callers)
        if item.callers_own_family is None:
            item.callers_own_family, _ = ex.before_after(
                change.service, change.started, seen, own_family=True
            )
        item.callers_measured = (
            _health_weight(item.callers.family, item.callers.weight) if item.callers else 0.0
        )
        if item.callers is not None:
            item.callers.basis = "callers"
    strongest = max(
        (f for f in (item.before_after, item.callers) if f is not None), key=lambda f: f.score, default=None
    )
    item.explained_by, item.discount = ex.explained_below(change.service, change.started, strongest)
    item.upstream = ex.upstream_on_path(change.service, change.started)
    if symptom is not None:
        before = values_before([symptom], change.started, ex.before_s)
        until = ex.until if ex.until > change.started else float("inf")
        effect = ex._effect(values_after([symptom], change.started, until), before, symptom)
        if effect is not None:
            item.symptom = Finding(
                "symptom", symptom.name, symptom.family, 1.0, effect, ceiling=symptom.ceiling
            )
        settle = max(300.0, 2 * ex.telemetry.step)
        recent = window(symptom, change.started - settle, change.started)
        # The baseline ends at the onset: a change started well after a step would
        # otherwise compare the degraded level with a window half made of it.
        baseline_end = change.started - settle
        if onset_known:
            baseline_end = min(baseline_end, onset)
        earlier = window(symptom, baseline_end - ex.before_s, baseline_end)
        pre = ex._effect(recent, earlier, symptom)
        item.pre_degraded = max(pre.strength, 0.0) if pre is not None else 0.0
        if pre is not None and ex.symptom_bad is not None and ex.symptom_bad[0] == symptom.name:
            # Only as far as the degradation the symptom settled at was already there.
            _, base, bad = ex.symptom_bad
            share = symptom.bad_sign * (pre.after_level - pre.before_level) / max(abs(bad - base), 1e-12)
            item.pre_degraded *= float(np.clip(share, 0.0, 1.0))
        local = max(LOCAL_S, 4 * ex.telemetry.step)
        step = ex._effect(
            values_after([symptom], change.started, change.started + local),
            values_before([symptom], change.started, local),
            symptom,
        )
        item.symptom_step = step.strength if step is not None else 0.0
    item.resource = _largest_resource(ex, change)
    item.own_pre_degraded = ex.already_degrading(change.service, change.started)
    if onset_known and not item.after_onset:
        item.at_onset = _worse_at_onset(ex, change, onset, own_family=False)
        item.at_onset_own_family = (
            item.at_onset
            if item.at_onset is not None and family_weight(item.at_onset.family, ex.family) >= 1.0
            else _worse_at_onset(ex, change, onset, own_family=True)
        )
    return item


def _worse_at_onset(ex: _Extractor, change: ChangeData, onset: float, own_family: bool) -> Finding | None:
    """The service's own (or its callers' view of its) shift at the onset: a delayed effect shows then."""
    found, _ = ex.before_after(change.service, onset, own_family=own_family)
    seen_at_onset = ex.telemetry.seen_by_callers.get(change.service)
    if seen_at_onset:
        by_callers, _ = ex.before_after(change.service, onset, seen_at_onset, own_family=own_family)
        if by_callers is not None and (found is None or by_callers.score > found.score):
            found = by_callers
    if found is None or found.score <= 0:
        return None
    _, below = ex.explained_below(change.service, onset, found)
    old = ex.old_version_shift(change, onset)
    shared = (
        _explained_share(old, found) * min(old.score / 0.5, 1.0) if old is not None and old.score > 0 else 0.0
    )
    return Finding(
        "before-after",
        found.metric,
        found.family,
        found.weight * (1 - below) * (1 - shared),
        found.effect,
        ceiling=found.ceiling,
    )


def _largest_resource(ex: _Extractor, change: ChangeData) -> Finding | None:
    """The biggest resource shift of the changed service (reported so a reader sees it was weighed)."""
    best: Finding | None = None
    for name, found in ex.telemetry.metrics(change.service).items():
        if found[0].family != "resource":
            continue
        split = _version_split(found, change)
        if split is not None:
            effect = ex._versions_effect(_aligned(split[0], split[1], change.started, ex.before_s), found[0])
            basis: Basis = "version"
        else:
            view = level_view(found)
            effect = ex._effect(
                values_after(view, change.started), values_before(view, change.started, ex.before_s), found[0]
            )
            basis = "before-after"
        if effect is None:
            continue
        finding = Finding(basis, name, "resource", family_weight("resource", ex.family), effect)
        if best is None or effect.strength > best.effect.strength:
            best = finding
    return best


def _fill(row: np.ndarray, item: Evidence, load: float) -> None:
    values: dict[str, float] = {
        f"relation_{item.relation}": 1.0,
        "callee_extra_depth": float(max(item.depth - 1, 0)) if item.relation == "callee" else 0.0,
        "after_detection": float(item.minutes_before_detection < 0),
        "after_onset": float(item.after_onset),
        "after_onset_point": float(item.after_onset_point),
        "pre_degraded": item.pre_degraded,
        "log_min_to_onset": _signed_log(max(item.minutes_before_onset, 0.0)) if item.onset_known else 0.0,
        "log_min_after_onset": _signed_log(max(-item.minutes_before_onset, 0.0)) if item.onset_known else 0.0,
    }
    # A new version worse in another family than the symptom's is kept apart: on the
    # training mix it rarely belonged to the culprit (a harmless rollout's side effect).
    own_version = item.version_own_family
    version = own_version.score if own_version else 0.0
    if own_version is not None and not own_version.paired and version > 0:
        version *= (1.0 - load) * (1.0 - item.version_discount)
    other_version = (
        item.version.score if item.version is not None and item.version is not own_version else 0.0
    )
    if item.version is not None and not item.version.paired and other_version > 0:
        other_version *= 1.0 - load
    overall = item.version.score if item.version else 0.0
    common = common_cause(item)
    explained = 1.0 - (1.0 - item.discount) * (1.0 - load) * (1.0 - common)
    # Shifts in the symptom's own family count as such; another family's (when it is the
    # strongest) in a column of its own: on the training mix they rarely belonged to the culprit.
    before_after = _discounted(item.before_after_own_family, explained)
    callers = _discounted(item.callers_own_family, explained)
    others = [
        found for found in (item.before_after, item.callers) if found is not None and found.weight < 1.0
    ]
    other_family = max((_discounted(found, explained) for found in others), default=0.0)
    if item.at_onset is not None and item.at_onset is not item.at_onset_own_family:
        other_family = max(other_family, item.at_onset.score * (1.0 - load))
    before_after_better = min(_discounted(item.before_after, explained), 0.0)
    callers_better = min(_discounted(item.callers, explained), 0.0)
    symptom = item.symptom.effect.strength if item.symptom else 0.0
    values.update(
        {
            "version_worse": max(version, 0.0),
            "version_worse_other_family": max(other_version, 0.0),
            "version_better": min(overall, 0.0),
            "version_measured": item.version_measured,
            "silent_new_version": float(item.silent is not None),
            "before_after_worse": max(before_after, 0.0),
            "before_after_better": before_after_better,
            "before_after_measured": item.before_after_measured,
            "callers_worse": max(callers, 0.0),
            "callers_better": callers_better,
            "other_family_worse": max(other_family, 0.0),
            "callers_measured": item.callers_measured,
            "upstream_worse": item.upstream[1].score * (1.0 - explained) if item.upstream else 0.0,
            "symptom_worse_after": max(symptom, 0.0) * (1.0 - load),
            "symptom_better_after": min(symptom, 0.0),
            "symptom_flat_after": float(item.symptom is not None and abs(symptom) < 0.2),
            "started_before_window": float(item.before_window),
            "silent_and_callers_worse": float(item.silent is not None)
            * max(callers, item.upstream[1].score if item.upstream else 0.0, 0.0),
            "own_pre_degraded": max(item.own_pre_degraded.score, 0.0) if item.own_pre_degraded else 0.0,
            "own_worse_at_onset": max(item.at_onset_own_family.score, 0.0) * (1.0 - load)
            if item.at_onset_own_family
            else 0.0,
            "own_magnitude": _magnitude(item),
            "before_window_no_onset": float(item.before_window and not item.onset_known),
            "old_version_worse": max(item.old_version.score, 0.0) if item.old_version else 0.0,
            "symptom_step": max(item.symptom_step, 0.0) * (1.0 - load),
        }
    )
    for name, value in values.items():
        row[FEATURE_INDEX[name]] = value


def common_cause(item: Evidence) -> float:
    """How much of the service's own shift its old version's shift accounts for (0..1)."""
    old, own = item.old_version, item.before_after or item.callers
    if old is None or own is None or old.score <= 0 or own.score <= 0:
        return 0.0
    return _explained_share(old, own) * min(old.score / 0.5, 1.0)


def _magnitude(item: Evidence) -> float:
    """How large the deciding shift of the change's own service is (log10 of its ratio, 0..1.5)."""
    best = 0.0
    for finding in (item.version, item.before_after):
        if finding is None or finding.weight < MEASURED_WEIGHT or finding.effect.strength < 0.2:
            continue
        best = max(best, abs(float(np.log10(max(finding.effect.ratio, 1e-9)))))
    if item.before_after is not None and item.discount > 0 and item.version is None:
        best *= 1.0 - item.discount
    return float(min(best, 1.5))


def _own_family(finding: Finding | None) -> Finding | None:
    """The finding when it is in the symptom's own signal family (full weight), else None."""
    return finding if finding is not None and finding.weight >= 1.0 else None


def _discounted(finding: Finding | None, discount: float) -> float:
    if finding is None:
        return 0.0
    score = finding.score
    return score * (1.0 - discount) if score > 0 else score
