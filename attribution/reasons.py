"""Evidence sentences per candidate change, from the same comparisons the model scored.

The first sentence places the change (kind, service, relation to the symptom, timing);
the next ones name the deciding evidence, strongest first: the version comparison, a
silent new version, the service's own before/after shift (and what explains it away),
what its callers measured, the symptom's movement; then what was weighed and set aside
(a fresh pod's resource shift) and what was not measured at all.
"""

from __future__ import annotations

from attribution.evidence import Evidence, Finding, Incident, common_cause
from attribution.stats import Effect

STRONG = 0.5  # a finding this strong (after family weighting) is called out as evidence
CLEAN = 0.2


def _minutes(value: float) -> str:
    minutes = abs(value)
    if minutes < 1:
        return f"{minutes * 60:.0f} s"
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"


def _relation(evidence: Evidence, symptom_service: str | None) -> str:
    target = symptom_service or "the symptom's service"
    if evidence.relation == "same":
        return "the service showing the symptom"
    if evidence.relation == "callee":
        return (
            f"a callee of {target}"
            if evidence.depth <= 1
            else f"{evidence.depth} hops downstream of {target}"
        )
    if evidence.relation == "caller":
        return f"a caller of {target} (upstream, rarely a cause)"
    if evidence.relation == "unrelated":
        return f"not on {target}'s call path"
    return "relation to the symptom unknown (no topology)"


def _movement(finding: Finding | Effect) -> str:
    """How the metric moved, in its own terms (a success rate falls, it does not 'rise 105x')."""
    effect = finding.effect if isinstance(finding, Finding) else finding
    ceiling = finding.ceiling if isinstance(finding, Finding) else None
    before, after = effect.before_level, effect.after_level
    if ceiling is not None:
        before, after = ceiling - before, ceiling - after
        unit = "%" if ceiling == 100.0 else ""
        return (
            f"fell from {_number(before)}{unit} to {_number(after)}{unit}"
            if after < before
            else (f"rose from {_number(before)}{unit} to {_number(after)}{unit}")
        )
    if abs(before) <= 1e-3 * max(abs(after), 1e-12):
        return f"rose from {_number(before)} to {_number(after)}"
    ratio = effect.ratio
    if ratio >= 1:
        return f"rose {ratio:.1f}x" if ratio >= 1.1 else f"rose {100 * (ratio - 1):.1f}%"
    drop = 1 - ratio
    return f"fell {100 * drop:.0f}%" if drop >= 0.01 else f"fell {100 * drop:.2f}%"


def _levels(finding: Finding) -> str:
    effect = finding.effect
    return f"{effect.n_before}/{effect.n_after} points, strength {effect.strength:.2f}"


def _number(value: float) -> str:
    return f"{value:.3g}"


def _version_sentence(change_service: str, finding: Finding) -> str:
    worse = finding.effect.strength > 0
    verb = "worse" if worse else "better"
    what = f"{finding.metric} of {change_service} {finding.detail}" if finding.detail else finding.metric
    return f"{what}: new version {verb} ({_movement(finding)}; {_levels(finding)})"


def explain(evidence: Evidence, incident: Incident, symptom_service: str | None) -> list[str]:
    change = evidence.change
    if evidence.minutes_before_detection < 0:
        timing = f"started {_minutes(evidence.minutes_before_detection)} after detection"
    else:
        timing = f"{_minutes(evidence.minutes_before_detection)} before detection"
    reasons = [f"{change.kind} change on {change.service}, {_relation(evidence, symptom_service)}, {timing}"]
    if evidence.minutes_before_detection < 0:
        reasons.append("started after the incident was detected, so it cannot explain it")
        return reasons
    if evidence.after_onset:
        reasons.append(
            f"started {_minutes(evidence.minutes_before_onset)} after the symptom began"
            f" (onset estimated from {incident.onset_source or 'the data'}), so it cannot explain it"
        )
    elif evidence.pre_degraded >= STRONG:
        reasons.append("the symptom was already degrading before this change started")
    elif evidence.after_onset_point:
        reasons.append(
            f"started {_minutes(evidence.minutes_before_onset)} after the symptom's first bad point"
            f" ({incident.onset_source or 'the data'}), which it cannot have caused"
        )
    elif incident.onset_known:
        reasons.append(
            f"started {_minutes(evidence.minutes_before_onset)} before the symptom's estimated onset"
        )
    found_any = False
    if (
        evidence.version is not None
        and evidence.version.effect.strength >= CLEAN
        and evidence.version.weight >= STRONG
    ):
        reasons.append(_version_sentence(change.service, evidence.version))
        found_any = True
    elif evidence.version_measured:
        clean = ", ".join(evidence.version_clean) or "its health metrics"
        reasons.append(f"new version looks like the old one ({clean} compared over the same window)")
        found_any = True
    if evidence.silent:
        reasons.append(f"{evidence.silent}: a broken rollout often looks like this")
        found_any = True
    if evidence.before_after is not None and evidence.before_after_measured:
        found_any = True
        finding = evidence.before_after
        if finding.score >= CLEAN:
            text = f"{finding.metric} of {change.service} {_movement(finding)} after the change ({_levels(finding)})"
            if evidence.explained_by is not None and evidence.discount >= CLEAN:
                below, cause = evidence.explained_by
                text += (
                    f"; but {below}, which it calls, degraded at the same time ({cause.metric}"
                    f" {_movement(cause)}), so the fault may come from further down"
                )
            old = evidence.old_version
            if old is not None and common_cause(evidence) >= CLEAN:
                text += (
                    f"; but its old version, which the change did not touch, degraded too ({old.metric}"
                    f" {_movement(old)}), so both versions share the cause"
                )
            reasons.append(text)
        else:
            reasons.append(f"no worsening of {change.service}'s own health metrics after the change")
    if evidence.callers is not None and evidence.callers_measured:
        found_any = True
        finding = evidence.callers
        if finding.score >= CLEAN:
            reasons.append(
                f"{finding.metric} of calls to {change.service} {_movement(finding)} after the change"
                f" ({_levels(finding)})"
            )
        else:
            reasons.append(f"calls to {change.service} look the same before and after the change")
    onset = evidence.at_onset
    if onset is not None and onset.score >= STRONG and evidence.minutes_before_onset > 5:
        reasons.append(
            f"{onset.metric} of {change.service} {_movement(onset)} when the symptom began,"
            f" {_minutes(evidence.minutes_before_onset)} after the change (a delayed effect)"
        )
    if evidence.upstream is not None and evidence.upstream[1].score >= STRONG:
        caller, finding = evidence.upstream
        reasons.append(
            f"{finding.metric} of {caller}, which calls {change.service} on the symptom's path,"
            f" {_movement(finding)} after the change ({_levels(finding)})"
        )
    if not found_any:
        reasons.append(f"no health metrics of {change.service} in the bundle: not measured (neutral)")
    if evidence.symptom is not None and evidence.relation != "same":
        effect = evidence.symptom.effect
        if effect.strength >= STRONG:
            reasons.append(
                f"the symptom {evidence.symptom.metric} {_movement(evidence.symptom)} after the change started"
            )
        elif effect.strength <= CLEAN:
            reasons.append(f"the symptom {evidence.symptom.metric} did not worsen after the change started")
    resource = evidence.resource
    if resource is not None and resource.effect.strength >= STRONG and resource.weight < STRONG:
        reasons.append(
            f"{resource.metric} of {change.service} {_movement(resource)} ({resource.basis});"
            " fresh pods differ in resources, so this only breaks ties"
        )
    if (
        incident.traffic is not None
        and incident.traffic[1].strength >= STRONG
        and incident.traffic[1].ratio >= 1.2
    ):
        service, effect = incident.traffic
        reasons.append(
            f"requests to {service} rose {effect.ratio:.1f}x when the symptom began: load may explain it"
        )
    if incident.unexplained is not None and incident.unexplained[1].score >= STRONG:
        service, finding = incident.unexplained
        reasons.append(
            f"{service} degraded ({finding.metric} {_movement(finding)}) with no change on it or below it:"
            " the cause may be outside the change list"
        )
    return reasons
