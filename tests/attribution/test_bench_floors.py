"""Regression floors per data set: the packaged model must stay well above the baselines.

Each set is a small fixed subset (the same incidents every run, about a minute in all),
scored with the same code as `backout attribution bench`. A floor sits a little under
what the packaged model scored on that subset when it was trained (so noise in a
retrain does not trip it) and well above the best baseline on the same incidents (so a
regression to baseline-level ranking fails `make test`). The full figures, with
intervals, come from the bench and are recorded in docs/attribution.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from attribution.bench import SetReport, evaluate_set, petshop_set
from attribution.case import Case
from attribution.generator import ScenarioGenerator
from attribution.model import AttributionModel
from attribution.splits import (
    DEVELOPMENT_FAMILIES,
    HELD_OUT_FAMILIES,
    TEST_NUISANCE_SEED,
    VALIDATION_NUISANCE_SEED,
)
from attribution.training import HELD_OUT_SEED, nuisance_cases

BASELINES = ("recency", "graph+recency", "canary")


@dataclass(frozen=True)
class Floor:
    hr_at_1: float
    hr_at_3: float
    ece: float  # a ceiling
    over_baseline: float  # HR@1 at least this far above the best baseline
    no_culprit_p95: float | None = None  # a ceiling on the top probability without a culprit


def _subset(name: str) -> tuple[list[Case], list[str]]:
    if name.startswith("petshop"):
        cases, groups, _ = petshop_set(name.removeprefix("petshop-"), 1)
        return cases, groups
    if name == "nuisance-development":
        cases = nuisance_cases(DEVELOPMENT_FAMILIES, VALIDATION_NUISANCE_SEED, 4)
    elif name == "nuisance-held-out":
        cases = nuisance_cases(HELD_OUT_FAMILIES, TEST_NUISANCE_SEED, 4)
    else:
        cases = ScenarioGenerator(seed=HELD_OUT_SEED).generate_many(80)
    return cases, [case.incident_id for case in cases]


FLOORS: dict[str, Floor] = {
    "petshop-validation": Floor(hr_at_1=0.9, hr_at_3=0.95, ece=0.13, over_baseline=0.6),
    "petshop-test": Floor(hr_at_1=0.78, hr_at_3=0.88, ece=0.08, over_baseline=0.55, no_culprit_p95=0.55),
    "nuisance-development": Floor(
        hr_at_1=0.6, hr_at_3=0.85, ece=0.05, over_baseline=0.25, no_culprit_p95=0.7
    ),
    "nuisance-held-out": Floor(hr_at_1=0.6, hr_at_3=0.9, ece=0.06, over_baseline=0.25, no_culprit_p95=0.95),
    "generator": Floor(hr_at_1=0.6, hr_at_3=0.8, ece=0.06, over_baseline=0.15, no_culprit_p95=0.8),
}


@pytest.fixture(scope="module")
def reports(packaged_model: AttributionModel) -> dict[str, SetReport]:
    out = {}
    for name in FLOORS:
        cases, groups = _subset(name)
        out[name] = evaluate_set(packaged_model, cases, name, groups, bootstrap=10)
    return out


@pytest.mark.parametrize("name", list(FLOORS))
def test_the_model_holds_its_floor_above_the_baselines(name: str, reports: dict[str, SetReport]) -> None:
    floor, report = FLOORS[name], reports[name]
    model = report.rankers["model"]
    best_baseline = max(report.rankers[baseline].hr_at_1.value for baseline in BASELINES)
    assert model.hr_at_1.value >= floor.hr_at_1, (name, model.hr_at_1)
    assert model.hr_at_3.value >= floor.hr_at_3, (name, model.hr_at_3)
    assert model.ece.value <= floor.ece, (name, model.ece)
    assert model.hr_at_1.value >= best_baseline + floor.over_baseline, (name, model.hr_at_1, best_baseline)
    top = report.no_culprit_top_probability["model"].p95
    if floor.no_culprit_p95 is not None and top is not None:
        assert top <= floor.no_culprit_p95, (name, top)
