"""Reproducible training: generated incidents + the nuisance development families + feedback -> artifact.

The training mix (chosen on validation, see docs/attribution.md):
- incidents from backout's own generator (attribution/generator.py);
- the nuisance generator's development families (attribution/nuisance, written
  independently of the features), never its held-out families;
- operator feedback, when there is any.
Nothing is trained on PetShop: its `train` folders are the validation split, its
`test` folders the test split. The same configuration gives a byte-identical artifact
(the fit is a convex problem solved deterministically).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel

from attribution.case import Case, case_from_bundle
from attribution.defaults import DEFAULT_NUISANCE_PER_FAMILY, DEFAULT_SEED, DEFAULT_SYNTHETIC
from attribution.evidence import extract
from attribution.feedback import feedback_incidents, load_feedback
from attribution.model import AttributionModel, LabelledIncident, boost, fit
from attribution.splits import DEVELOPMENT_FAMILIES, TRAINING_NUISANCE_SEED

NUISANCE_WEIGHT = 1.0  # a development-family incident weighs as much as a generated one
# Added to the fitted 'no culprit' logit: a little more abstention than maximum likelihood on the
# training mix gives (chosen on validation: fewer rollbacks on a wrong or absent culprit for a
# small loss of calibration; see docs/attribution.md).
NULL_OFFSET = 2.0
HELD_OUT_SEED = 1_000_003  # the generator's own held-out seed (a sanity check, not a test of generalisation)


@dataclass(slots=True)
class TrainingConfig:
    seed: int = DEFAULT_SEED
    synthetic: int = DEFAULT_SYNTHETIC
    nuisance_per_family: int = DEFAULT_NUISANCE_PER_FAMILY
    nuisance_families: tuple[str, ...] = DEVELOPMENT_FAMILIES
    feedback_file: Path | None = None


class TrainingReport(BaseModel):
    incidents: int
    synthetic_incidents: int
    nuisance_incidents: int
    feedback_incidents: int
    generate_seconds: float
    features_seconds: float
    fit_seconds: float
    total_seconds: float
    model_version: str
    notes: list[str] = []


def packaged_model_path() -> Path:
    return Path(str(resources.files("attribution").joinpath("data", "model.json")))


def label(cases: list[Case], weight: float = 1.0) -> list[LabelledIncident]:
    incidents = []
    for case in cases:
        features, _, incident = extract(case)
        rows = [row for row, change in enumerate(case.changes) if change.id == case.culprit_id]
        incidents.append(
            LabelledIncident(features, incident.null_features, rows[0] if rows else None, weight)
        )
    return incidents


def fit_mix(incidents: list[LabelledIncident], version: str) -> AttributionModel:
    """The linear fit, the boosted trees and the 'no culprit' offset: the shipped model's recipe
    (also every fold of the validation harness, attribution/validate.py)."""
    model = boost(fit(incidents, version=version), incidents)
    model.null_weights[0] += NULL_OFFSET
    return model


def nuisance_cases(families: tuple[str, ...], seed: int, per_family: int) -> list[Case]:
    """Incidents of the independent nuisance generator as cases with their ground truth."""
    from attribution.nuisance import generate

    cases: list[Case] = []
    for family in families:
        for item in generate(family, seed, per_family):
            case = case_from_bundle(item.bundle)
            case.culprit_id = item.culprit
            case.extra = {"family": family, "index": item.index}
            cases.append(case)
    return cases


def train(config: TrainingConfig) -> tuple[AttributionModel, TrainingReport]:
    from attribution.generator import ScenarioGenerator  # scipy: only when training

    started = time.perf_counter()
    cases = ScenarioGenerator(seed=config.seed).generate_many(config.synthetic)
    nuisance = nuisance_cases(config.nuisance_families, TRAINING_NUISANCE_SEED, config.nuisance_per_family)
    generated = time.perf_counter()
    incidents = label(cases) + label(nuisance, NUISANCE_WEIGHT)
    feedback: list[LabelledIncident] = []
    if config.feedback_file is not None:
        feedback = feedback_incidents(load_feedback(config.feedback_file))
        incidents += feedback
    featured = time.perf_counter()
    version = f"4.s{config.seed}.n{config.synthetic}.u{len(nuisance)}.f{len(feedback)}"
    model = fit_mix(incidents, version)
    finished = time.perf_counter()
    model.meta.update(
        {
            "seed": config.seed,
            "synthetic": config.synthetic,
            "nuisance": len(nuisance),
            "nuisance_families": list(config.nuisance_families),
            "feedback": len(feedback),
            "null_offset": NULL_OFFSET,
        }
    )
    report = TrainingReport(
        incidents=len(incidents),
        synthetic_incidents=len(cases),
        nuisance_incidents=len(nuisance),
        feedback_incidents=len(feedback),
        generate_seconds=round(generated - started, 2),
        features_seconds=round(featured - generated, 2),
        fit_seconds=round(finished - featured, 2),
        total_seconds=round(finished - started, 2),
        model_version=version,
    )
    return model, report
