"""The validation harness's scoring (attribution/validate.py): ranks, the shipped rule, the pooled figures."""

from __future__ import annotations

import numpy as np
import pytest

from attribution.case import Case, ChangeData
from attribution.evidence import FEATURE_NAMES, NULL_FEATURE_NAMES
from attribution.model import AttributionModel, LabelledIncident
from attribution.validate import Outcome, petshop_summary, score, summarise


def _outcome(
    family: str, rank: int | None, acted: bool = False, correct: bool = False, top_p: float = 0.5
) -> Outcome:
    culprit = None if rank is None else "c"
    return Outcome(family, f"{family}-{rank}", culprit, rank, None, "x", top_p, 0.0, acted, correct)


def test_summary_averages_families_and_pools_abstention_and_rollback() -> None:
    outcomes = [
        _outcome("a", 1, acted=True, correct=True),
        _outcome("a", 1, acted=True, correct=True),
        _outcome("a", 2, acted=True),  # a wrong rollback
        _outcome("a", 4),
        _outcome("b", 1),
        _outcome("b", 3),
        *[_outcome("none", None, top_p=p) for p in np.linspace(0.0, 1.0, 21)],
    ]
    summary = summarise(outcomes)
    assert summary.families == {"a": 0.5, "b": 0.5}
    assert summary.hr_at_1 == 0.5  # the mean over families, not over incidents (0.5 either way here)
    assert summary.hr_at_3 == pytest.approx((0.75 + 1.0) / 2)
    assert summary.no_culprit == 21 and summary.no_culprit_p95 == pytest.approx(0.95)
    assert (summary.acted, summary.wrong) == (3, 1)
    assert summary.precision == pytest.approx(2 / 3, abs=1e-4)
    assert summary.coverage == pytest.approx(3 / 27, abs=1e-4)


def test_family_mean_is_not_the_incident_mean() -> None:
    outcomes = [_outcome("big", 1)] * 9 + [_outcome("big", 2)] + [_outcome("small", 2)]
    assert summarise(outcomes).hr_at_1 == pytest.approx((0.9 + 0.0) / 2)


def _model(weight: float) -> AttributionModel:
    weights = np.zeros(len(FEATURE_NAMES))
    weights[0] = weight
    return AttributionModel(weights, np.zeros(len(NULL_FEATURE_NAMES)), "toy")


def _case(culprit: str | None) -> tuple[Case, LabelledIncident]:
    changes = [ChangeData(name, "svc", "config", 0.0) for name in ("a", "b", "c")]
    case = Case("inc", 100.0, "svc", "error_rate", [], changes, [], culprit_id=culprit)
    features = np.zeros((3, len(FEATURE_NAMES)))
    features[1, 0] = 1.0  # change b stands out
    row = None if culprit is None else ["a", "b", "c"].index(culprit)
    return case, LabelledIncident(features, np.zeros(len(NULL_FEATURE_NAMES)), row)


def test_score_ranks_the_culprit_and_applies_the_rule() -> None:
    case, incident = _case("b")
    (confident,) = score(_model(8.0), [case], [incident], (0.6, 0.2), "f")
    assert (confident.rank, confident.top, confident.acted, confident.correct) == (1, "b", True, True)
    (unsure,) = score(_model(0.5), [case], [incident], (0.6, 0.2), "f")
    assert unsure.rank == 1 and not unsure.acted
    case, incident = _case("a")
    (wrong,) = score(_model(8.0), [case], [incident], (0.6, 0.2), "f")
    assert wrong.rank == 2 and wrong.acted and not wrong.correct
    case, incident = _case(None)
    (no_culprit,) = score(_model(8.0), [case], [incident], (0.6, 0.2), "f")
    assert no_culprit.rank is None and no_culprit.acted and not no_culprit.correct


def test_petshop_summary_reads_ece_from_every_candidate() -> None:
    case, incident = _case("b")
    perfect = petshop_summary(_model(40.0), [case], [incident])
    assert perfect.hr_at_1 == 1.0 and perfect.ece < 1e-6 and perfect.precision == 1.0
    case, incident = _case("a")
    wrong = petshop_summary(_model(40.0), [case], [incident])
    assert wrong.hr_at_1 == 0.0 and wrong.ece == pytest.approx(2 / 3, abs=1e-3) and wrong.wrong == 1
