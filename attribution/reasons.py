"""One-line evidence sentences per candidate change, from the same numbers the model saw."""

from __future__ import annotations

from attribution.features import Evidence
from attribution.stats import Shift

STRONG_Z = 3.0


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


def _movement(shift: Shift) -> str:
    if shift.ratio >= 1:
        return f"rose {shift.ratio:.1f}x" if shift.ratio >= 1.1 else f"rose {100 * (shift.ratio - 1):.1f}%"
    drop = 1 - shift.ratio
    return f"fell {100 * drop:.0f}%" if drop >= 0.01 else f"fell {100 * drop:.2f}%"


def explain(evidence: Evidence, symptom_service: str | None) -> list[str]:
    change = evidence.change
    if evidence.minutes_before_detection < 0:
        timing = f"started {_minutes(evidence.minutes_before_detection)} after detection"
    else:
        timing = f"{_minutes(evidence.minutes_before_detection)} before detection"
    reasons = [f"{change.kind} change on {change.service}, {_relation(evidence, symptom_service)}, {timing}"]
    if evidence.after_onset and evidence.minutes_before_detection >= 0:
        reasons.append(
            f"started {_minutes(evidence.minutes_before_onset)} after the symptom began, so it cannot explain it"
        )
    elif evidence.progress is not None and evidence.progress < 1.0:
        reasons.append(f"rollout was {evidence.progress:.0%} complete when the symptom began")
    if evidence.canary is not None:
        metric, shift = evidence.canary
        version = change.to_version or "new"
        if shift.z >= STRONG_Z:
            reasons.append(
                f"{metric} of {change.service} version {version} {_movement(shift)} over the old version"
                f" (robust z {shift.z:.1f})"
            )
        else:
            reasons.append(f"{metric} of {change.service} version {version} looks like the old version")
    if evidence.own is not None:
        metric, shift = evidence.own
        if shift.z >= STRONG_Z:
            reasons.append(
                f"{metric} of {change.service} {_movement(shift)} after the change (robust z {shift.z:.1f})"
            )
        else:
            reasons.append(f"no clear worsening of {change.service}'s metrics after the change")
    elif evidence.canary is None:
        reasons.append(f"no metrics of {change.service} in the bundle")
    if (
        evidence.own_at_onset is not None
        and evidence.own_at_onset[1].z >= STRONG_Z
        and (evidence.own is None or evidence.own[1].z < STRONG_Z)
        and evidence.minutes_before_onset > 5
    ):
        metric, shift = evidence.own_at_onset
        reasons.append(
            f"{metric} of {change.service} {_movement(shift)} when the symptom began,"
            f" {_minutes(evidence.minutes_before_onset)} after the change (a delayed effect?)"
        )
    if evidence.path_caller is not None and evidence.path_caller[2].z >= STRONG_Z:
        caller, metric, shift = evidence.path_caller
        reasons.append(
            f"{metric} of {caller}, which calls {change.service}, {_movement(shift)} after the change"
        )
    if evidence.callee is not None and evidence.own is not None:
        callee, metric, shift = evidence.callee
        if shift.z >= STRONG_Z and shift.z >= evidence.own[1].z:
            reasons.append(
                f"its callee {callee} worsened as much ({metric}), so the fault may come from further down"
            )
    if (
        evidence.symptom is not None
        and evidence.relation != "same"
        and evidence.minutes_before_detection >= 0
    ):
        metric, shift = evidence.symptom
        if shift.z >= STRONG_Z:
            reasons.append(f"the symptom {metric} {_movement(shift)} in the window after the change")
        else:
            reasons.append(f"the symptom {metric} did not move in the window after the change")
    if (
        evidence.traffic is not None
        and evidence.traffic[1].z >= STRONG_Z
        and evidence.traffic[1].ratio >= 1.2
    ):
        service, shift = evidence.traffic
        reasons.append(
            f"requests to {service} rose {shift.ratio:.1f}x when the symptom began: load may explain it"
        )
    return reasons
