"""Operator feedback store and its use in training; the Temporal activity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.attribution import AttributionActivities
from attribution.feedback import FeedbackError, feedback_incidents, load_feedback, record_feedback
from attribution.training import TrainingConfig, train
from incidents.bundle import AttributionOutput, load_bundle

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios" / "attribution"
BUNDLE = SCENARIOS / "004_corpus_update_two_hops" / "bundle.json"


def test_record_feedback_appends_labels(tmp_path: Path) -> None:
    store = tmp_path / "state" / "feedback.jsonl"
    bundle = load_bundle(BUNDLE)
    first = record_feedback(store, "inc-004", "chg-gw-cfg-81", False, bundle)
    second = record_feedback(store, "inc-004", "chg-corpus-1127", True, json.loads(BUNDLE.read_text()))
    assert not first.confirmed and second.confirmed
    records = load_feedback(store)
    assert [(r.change_id, r.confirmed) for r in records] == [
        ("chg-gw-cfg-81", False),
        ("chg-corpus-1127", True),
    ]
    incidents = feedback_incidents(records)
    assert len(incidents) == 1
    row = [c["id"] for c in json.loads(BUNDLE.read_text())["changes"]].index("chg-corpus-1127")
    assert incidents[0].culprit_row == row and incidents[0].weight > 1


def test_rejection_only_labels_train_on_that_change(tmp_path: Path) -> None:
    store = tmp_path / "feedback.jsonl"
    record_feedback(store, "inc-004", "chg-gw-cfg-81", False, load_bundle(BUNDLE))
    [incident] = feedback_incidents(load_feedback(store))
    assert (
        incident.culprit_row is None
        and incident.rejected_rows is not None
        and incident.rejected_rows.size == 1
    )


def test_bad_feedback_is_refused_with_the_reason(tmp_path: Path) -> None:
    store = tmp_path / "feedback.jsonl"
    with pytest.raises(FeedbackError, match="change_id"):
        record_feedback(store, "inc-004", "chg-nope", True, load_bundle(BUNDLE))
    with pytest.raises(FeedbackError, match="bundle"):
        record_feedback(store, "inc-004", "chg-1", True, {"version": 1})
    store.write_text('{"incident_id": "x"}\n')
    with pytest.raises(FeedbackError, match=":1:"):
        load_feedback(store)


def test_training_uses_feedback(tmp_path: Path) -> None:
    store = tmp_path / "feedback.jsonl"
    record_feedback(store, "inc-004", "chg-corpus-1127", True, load_bundle(BUNDLE))
    model, report = train(TrainingConfig(seed=5, synthetic=150, nuisance_per_family=0, feedback_file=store))
    assert report.feedback_incidents == 1 and model.version.endswith(".f1")


def test_activity_attributes_a_bundle() -> None:
    from config import Settings

    activities = AttributionActivities(Settings())
    output = ActivityEnvironment().run(activities.attribute_bundle, load_bundle(BUNDLE))
    assert isinstance(output, AttributionOutput)
    assert output.ranking[0].change_id == "chg-corpus-1127"
