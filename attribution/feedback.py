"""Operator labels on culprits (confirm / reject), stored as JSON lines and used by the next training run."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from attribution.case import case_from_bundle
from attribution.evidence import extract
from attribution.model import LabelledIncident
from incidents.bundle import (
    BundleError,
    IncidentBundle,
    bundle_to_json,
    describe_validation_error,
    parse_bundle,
)

FEEDBACK_WEIGHT = 5.0  # an operator's label is worth more than one generated incident


class FeedbackError(ValueError):
    """A label that cannot be stored or a feedback file that cannot be read; the message names the problem."""


class FeedbackRecord(BaseModel):
    incident_id: str = Field(min_length=1)
    change_id: str = Field(min_length=1)
    confirmed: bool
    bundle: dict[str, Any]
    recorded_at: datetime


def record_feedback(
    path: Path, incident_id: str, change_id: str, confirmed: bool, bundle: IncidentBundle | dict[str, Any]
) -> FeedbackRecord:
    """Append one operator label to the file at `path`; the change must be one of the bundle's changes."""
    record = feedback_record(incident_id, change_id, confirmed, bundle)
    append_feedback(path, record)
    return record


def feedback_record(
    incident_id: str, change_id: str, confirmed: bool, bundle: IncidentBundle | dict[str, Any]
) -> FeedbackRecord:
    """One operator label, checked: the change must be one of the bundle's changes."""
    if not incident_id.strip():
        raise FeedbackError("incident_id: must be a non-empty string")
    try:
        parsed = bundle if isinstance(bundle, IncidentBundle) else parse_bundle(bundle)
    except BundleError as exc:
        raise FeedbackError(f"bundle: {exc}") from exc
    known = [change.id for change in parsed.changes]
    if change_id not in known:
        raise FeedbackError(
            f"change_id: {change_id!r} is not a change of incident {incident_id!r} (known: {', '.join(known) or 'none'})"
        )
    return FeedbackRecord(
        incident_id=incident_id,
        change_id=change_id,
        confirmed=confirmed,
        bundle=bundle_to_json(parsed),
        recorded_at=datetime.now(tz=UTC),
    )


def append_feedback(path: Path, record: FeedbackRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (record.model_dump_json() + "\n").encode("utf-8")
    # One write on an O_APPEND descriptor keeps concurrent writers' lines whole.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)


def load_feedback(path: Path) -> list[FeedbackRecord]:
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(FeedbackRecord.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            detail = describe_validation_error(exc) if isinstance(exc, ValidationError) else exc.msg
            raise FeedbackError(f"{path}:{number}: {detail}") from exc
    return records


def feedback_incidents(records: list[FeedbackRecord]) -> list[LabelledIncident]:
    """One training incident per labelled incident; the latest label per change wins."""
    latest: dict[str, dict[str, FeedbackRecord]] = {}
    for record in sorted(records, key=lambda r: r.recorded_at):
        latest.setdefault(record.incident_id, {})[record.change_id] = record
    incidents = []
    for labels in latest.values():
        newest = max(labels.values(), key=lambda r: r.recorded_at)
        case = case_from_bundle(parse_bundle(newest.bundle))
        features, _, incident = extract(case)
        row_of = {change.id: row for row, change in enumerate(case.changes)}
        confirmed = [r for r in labels.values() if r.confirmed and r.change_id in row_of]
        if confirmed:
            culprit = max(confirmed, key=lambda r: r.recorded_at).change_id
            incidents.append(
                LabelledIncident(features, incident.null_features, row_of[culprit], FEEDBACK_WEIGHT)
            )
            continue
        rejected = [row_of[r.change_id] for r in labels.values() if r.change_id in row_of]
        if rejected:
            incidents.append(
                LabelledIncident(
                    features,
                    incident.null_features,
                    None,
                    FEEDBACK_WEIGHT,
                    rejected_rows=np.array(sorted(rejected)),
                )
            )
    return incidents
