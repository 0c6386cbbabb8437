"""Operator feedback store and its use in training; PetShop conversion; the Temporal activity."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.attribution import ACTIVITIES, attribute_bundle
from attribution.feedback import FeedbackError, feedback_incidents, load_feedback, record_feedback
from attribution.petshop import BUCKET_S, default_root, load_issue, load_split
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
    assert incident.culprit_row is None and incident.known_rows is not None and incident.known_rows.size == 1


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
    model, report = train(TrainingConfig(seed=5, synthetic=150, petshop=False, feedback_file=store))
    assert report.feedback_incidents == 1 and model.version.endswith(".f1")


def test_petshop_test_split_becomes_bundles_with_ground_truth() -> None:
    if not default_root().exists():
        pytest.skip("PetShop dataset not present")
    cases = load_split("test")
    assert len(cases) == 48
    no_culprit = [c for c in cases if c.culprit_id is None]
    assert len(no_culprit) == 6 and all("dynamo" in c.extra["command"] for c in no_culprit)
    for case in cases:
        if case.culprit_id is not None:
            culprit = next(c for c in case.changes if c.id == case.culprit_id)
            assert culprit.service == case.extra["root_cause"]
            assert culprit.kind == ("config" if "ssm" in case.extra["command"] else "image")
        assert len(case.changes) >= 3 and case.symptom_service == "PetSite" and case.edges
    again = load_split("test")
    assert [c.changes[0].started for c in again] == [c.changes[0].started for c in cases]


def test_petshop_points_are_stamped_at_the_end_of_their_bucket() -> None:
    if not default_root().exists():
        pytest.skip("PetShop dataset not present")
    issue = next(iter(sorted((default_root() / "dataset").glob("low_traffic/train/issue_0"))))
    with (issue / "metrics.csv").open(newline="") as handle:
        bucket_starts = [float(row[0]) for row in list(csv.reader(handle))[4:]]
    case = load_issue(issue)
    culprit = next(c for c in case.changes if c.id == case.culprit_id)
    assert all(s.times[0] == bucket_starts[0] + BUCKET_S for s in case.series)
    assert case.detected_at == bucket_starts[-1] + BUCKET_S
    # The bucket holding the injection counts as evidence after it, never from before it.
    assert bucket_starts[1] < culprit.started < bucket_starts[1] + BUCKET_S
    assert all(s.times[s.times > culprit.started].min() == bucket_starts[1] + BUCKET_S for s in case.series)


def test_activity_attributes_a_bundle() -> None:
    assert [attribute_bundle] == ACTIVITIES
    output = ActivityEnvironment().run(attribute_bundle, load_bundle(BUNDLE))
    assert isinstance(output, AttributionOutput)
    assert output.ranking[0].change_id == "chg-corpus-1127"
