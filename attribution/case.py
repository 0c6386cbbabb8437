"""A numeric view of one incident, shared by real bundles, the generator and PetShop.

Feature extraction works on this view (float seconds and numpy arrays) so the same
code serves `backout attribute` and fast training on generated incidents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from incidents.bundle import IncidentBundle, parse_bundle


@dataclass(slots=True)
class SeriesData:
    name: str
    service: str
    version: str | None
    bad_sign: float  # +1 when up is worse, -1 when down is worse
    times: np.ndarray
    values: np.ndarray
    pod: str | None = None
    peer: str | None = None


@dataclass(slots=True)
class ChangeData:
    id: str
    service: str
    kind: str
    started: float
    completed: float | None = None
    from_version: str | None = None
    to_version: str | None = None
    description: str | None = None


@dataclass(slots=True)
class Case:
    incident_id: str
    detected_at: float
    symptom_service: str | None
    symptom_metric: str | None
    edges: list[tuple[str, str]]
    changes: list[ChangeData]
    series: list[SeriesData]
    culprit_id: str | None = None  # ground truth when known (training and benches)
    extra: dict[str, Any] = field(default_factory=dict)


def case_from_bundle(bundle: IncidentBundle) -> Case:
    series: list[SeriesData] = []
    for metric in bundle.metrics:
        if not metric.points:
            continue
        times = np.fromiter((point[0].timestamp() for point in metric.points), float, len(metric.points))
        values = np.fromiter((point[1] for point in metric.points), float, len(metric.points))
        finite = np.isfinite(values)
        order = np.argsort(times[finite], kind="stable")
        series.append(
            SeriesData(
                name=metric.name,
                service=metric.service,
                version=metric.version,
                bad_sign=1.0 if metric.bad_direction == "up" else -1.0,
                times=times[finite][order],
                values=values[finite][order],
                pod=metric.pod,
                peer=metric.peer,
            )
        )
    changes = [
        ChangeData(
            id=change.id,
            service=change.service,
            kind=change.kind,
            started=change.started_at.timestamp(),
            completed=change.completed_at.timestamp() if change.completed_at else None,
            from_version=change.from_version,
            to_version=change.to_version,
            description=change.description,
        )
        for change in bundle.changes
    ]
    symptom = bundle.incident.symptom
    return Case(
        incident_id=bundle.incident.id,
        detected_at=bundle.incident.detected_at.timestamp(),
        symptom_service=bundle.incident.service,
        symptom_metric=symptom.metric if symptom else None,
        edges=[(caller, callee) for caller, callee in (bundle.topology.edges if bundle.topology else [])],
        changes=changes,
        series=series,
    )


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def case_to_bundle_dict(case: Case, namespace: str = "prod") -> dict[str, Any]:
    """The spec v1 wire form of a case (used to write generated incidents to disk)."""
    symptom: dict[str, Any] | None = None
    if case.symptom_metric:
        signs = [s.bad_sign for s in case.series if s.name == case.symptom_metric]
        direction = None if not signs else ("up" if signs[0] > 0 else "down")
        symptom = {"metric": case.symptom_metric, "bad_direction": direction}
    return {
        "version": 1,
        "incident": {
            "id": case.incident_id,
            "detected_at": _rfc3339(case.detected_at),
            "service": case.symptom_service,
            "namespace": namespace,
            "source": "alertmanager",
            "labels": {},
            "symptom": symptom,
        },
        "topology": {"edges": [[caller, callee] for caller, callee in case.edges]},
        "changes": [
            {
                "id": change.id,
                "service": change.service,
                "namespace": namespace,
                "kind": change.kind,
                "started_at": _rfc3339(change.started),
                "completed_at": _rfc3339(change.completed) if change.completed is not None else None,
                "from_version": change.from_version,
                "to_version": change.to_version,
                "description": change.description,
            }
            for change in case.changes
        ],
        "metrics": [
            {
                "name": s.name,
                "service": s.service,
                "version": s.version,
                "pod": s.pod,
                "peer": s.peer,
                "bad_direction": "up" if s.bad_sign > 0 else "down",
                "points": [
                    [_rfc3339(float(t)), float(f"{v:.9g}")] for t, v in zip(s.times, s.values, strict=True)
                ],
            }
            for s in case.series
        ],
    }


def case_to_bundle(case: Case) -> IncidentBundle:
    return parse_bundle(case_to_bundle_dict(case))
