"""`backout attribution validate`: the validation harness every model choice is made on.

Validation data only (docs/attribution.md, rounds 3-5); it never loads a test split:
- leave-one-development-family-out (LOFO): for each nuisance development family, the full
  training mix without that family (backout's generator, seed 7, plus 60 incidents of each
  other development family, seed 101) is fitted exactly as `backout attribution train` fits
  it, and scored on 100 incidents of the left-out family (its 60 training-seed incidents,
  unused in that fold, and 40 of the validation seed 303);
- fresh: the same fold models scored on 60 incidents per family of seed 404 (never trained on);
- PetShop validation (the dataset's `train` folders, 10 distractor draws per issue), scored by
  the full training mix's model.

Figures: HR@1 and HR@3 as the mean over the families with a culprit; the top probability on
incidents without a culprit (p95) and automatic rollback at the shipped runbook rule (precision
and coverage), pooled over the folds.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from attribution.case import Case
from attribution.model import AttributionModel, LabelledIncident
from attribution.splits import DEVELOPMENT_FAMILIES, TRAINING_NUISANCE_SEED, VALIDATION_NUISANCE_SEED
from attribution.training import fit_mix, label, nuisance_cases

FRESH_SEED = 404  # development families, incidents never trained on nor used before round 4
TRAINING_PER_FAMILY = 60
VALIDATION_PER_FAMILY = 40
FRESH_PER_FAMILY = 60
PETSHOP_DRAWS = 10
CACHE_FORMAT = 1


@dataclass(slots=True)
class ValidationData:
    """The cases every harness run scores (generated once; the evidence is extracted per run)."""

    generated: list[Case]
    training: dict[str, list[Case]]  # seed 101, per development family
    validation: dict[str, list[Case]]  # seed 303
    fresh: dict[str, list[Case]]  # seed 404
    petshop: list[Case]


def _sources_digest() -> str:
    """A digest of the code that makes the cases (the generators, PetShop's loader): a cache made
    by other code is not reused."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(
        [root / "generator.py", root / "petshop.py", root / "case.py", *(root / "nuisance").glob("*.py")]
    ):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def load_data(cache: Path | None = None, synthetic: int = 2_000, seed: int = 7) -> ValidationData:
    """Generate (or read from `cache`, a pickle this function wrote for the same code) the harness's cases."""
    key = f"v{CACHE_FORMAT}.s{seed}.n{synthetic}.{_sources_digest()}"
    if cache is not None and cache.exists():
        with cache.open("rb") as handle:
            stored = pickle.load(handle)  # a file this function wrote
        if stored.get("key") == key:
            return stored["data"]  # type: ignore[no-any-return]
    from attribution.generator import ScenarioGenerator
    from attribution.petshop import load_split

    def by_family(seed_: int, count: int) -> dict[str, list[Case]]:
        return {family: nuisance_cases((family,), seed_, count) for family in DEVELOPMENT_FAMILIES}

    data = ValidationData(
        generated=ScenarioGenerator(seed=seed).generate_many(synthetic),
        training=by_family(TRAINING_NUISANCE_SEED, TRAINING_PER_FAMILY),
        validation=by_family(VALIDATION_NUISANCE_SEED, VALIDATION_PER_FAMILY),
        fresh=by_family(FRESH_SEED, FRESH_PER_FAMILY),
        petshop=load_split("validation", variants=PETSHOP_DRAWS),
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with cache.open("wb") as sink:
            pickle.dump({"key": key, "data": data}, sink)
    return data


@dataclass(slots=True)
class Outcome:
    """One scored incident: where its culprit ranked and what the shipped rule would have done."""

    family: str
    incident_id: str
    culprit: str | None
    rank: int | None  # the culprit's rank (1 = top), None without a culprit
    culprit_p: float | None
    top: str | None
    top_p: float
    margin: float
    acted: bool
    correct: bool


def score(
    model: AttributionModel,
    cases: list[Case],
    incidents: list[LabelledIncident],
    rule: tuple[float, float],
    family: str | None = None,
) -> list[Outcome]:
    """Each incident's outcome under `model` (`incidents` are `cases` labelled, in the same order)."""
    threshold, margin = rule
    out: list[Outcome] = []
    for case, incident in zip(cases, incidents, strict=True):
        p = model.probabilities(incident.features, incident.null_features)
        ordered = np.sort(p)[::-1]
        top_p = float(ordered[0]) if p.size else 0.0
        gap = top_p - (float(ordered[1]) if p.size > 1 else 0.0)
        top = int(np.argmax(p)) if p.size else None
        rank = None
        culprit_p = None
        if incident.culprit_row is not None:
            order = np.argsort(-p, kind="stable")
            rank = int(np.flatnonzero(order == incident.culprit_row)[0]) + 1
            culprit_p = float(p[incident.culprit_row])
        acted = bool(p.size) and top_p >= threshold and gap >= margin
        out.append(
            Outcome(
                family=family or str(case.extra.get("family", case.extra.get("issue", ""))),
                incident_id=case.incident_id,
                culprit=case.culprit_id,
                rank=rank,
                culprit_p=culprit_p,
                top=case.changes[top].id if top is not None else None,
                top_p=top_p,
                margin=gap,
                acted=acted,
                correct=acted and top is not None and top == incident.culprit_row,
            )
        )
    return out


class Summary(BaseModel):
    hr_at_1: float  # mean over families with a culprit
    hr_at_3: float
    families: dict[str, float]  # HR@1 per family with a culprit
    no_culprit: int
    no_culprit_p95: float | None
    acted: int
    wrong: int
    precision: float | None
    coverage: float


def summarise(outcomes: list[Outcome]) -> Summary:
    """Mean HR@1/HR@3 over the families with a culprit; abstention and rollback pooled."""
    families = sorted({o.family for o in outcomes if o.rank is not None})
    hr1 = {f: float(np.mean([o.rank == 1 for o in outcomes if o.family == f and o.rank])) for f in families}
    hr3 = {f: float(np.mean([o.rank <= 3 for o in outcomes if o.family == f and o.rank])) for f in families}
    null_tops = [o.top_p for o in outcomes if o.culprit is None]
    acted = [o for o in outcomes if o.acted]
    return Summary(
        hr_at_1=round(float(np.mean(list(hr1.values()))), 4) if hr1 else 0.0,
        hr_at_3=round(float(np.mean(list(hr3.values()))), 4) if hr3 else 0.0,
        families={f: round(v, 4) for f, v in hr1.items()},
        no_culprit=len(null_tops),
        no_culprit_p95=round(float(np.percentile(null_tops, 95)), 4) if null_tops else None,
        acted=len(acted),
        wrong=sum(not o.correct for o in acted),
        precision=round(sum(o.correct for o in acted) / len(acted), 4) if acted else None,
        coverage=round(len(acted) / len(outcomes), 4) if outcomes else 0.0,
    )


class PetShopSummary(BaseModel):
    hr_at_1: float
    hr_at_3: float
    ece: float
    acted: int
    wrong: int
    precision: float | None
    coverage: float


def petshop_summary(
    model: AttributionModel, cases: list[Case], incidents: list[LabelledIncident]
) -> PetShopSummary:
    from attribution.bench import ECE_BINS, rollback_rule

    threshold, margin, _ = rollback_rule()
    outcomes = score(model, cases, incidents, (threshold, margin))
    ranked = [o for o in outcomes if o.rank is not None]
    gap = np.zeros(ECE_BINS)
    candidates = 0
    for incident in incidents:
        p = model.probabilities(incident.features, incident.null_features)
        y = np.zeros(p.size)
        if incident.culprit_row is not None:
            y[incident.culprit_row] = 1.0
        bins = np.minimum((p * ECE_BINS).astype(int), ECE_BINS - 1)
        np.add.at(gap, bins, p - y)
        candidates += p.size
    acted = [o for o in outcomes if o.acted]
    return PetShopSummary(
        hr_at_1=round(float(np.mean([o.rank == 1 for o in ranked])), 4),
        hr_at_3=round(float(np.mean([(o.rank or 99) <= 3 for o in ranked])), 4),
        ece=round(float(np.abs(gap).sum()) / max(candidates, 1), 4),
        acted=len(acted),
        wrong=sum(not o.correct for o in acted),
        precision=round(sum(o.correct for o in acted) / len(acted), 4) if acted else None,
        coverage=round(len(acted) / len(outcomes), 4),
    )


class ValidationReport(BaseModel):
    lofo: Summary
    fresh: Summary
    petshop: PetShopSummary
    full_model_version: str
    outcomes: dict[str, list[dict[str, object]]]  # "lofo", "fresh", "petshop": every incident


def run(data: ValidationData, version: str = "validate", log: bool = False) -> ValidationReport:
    """Extract the evidence (as the worktree's code computes it), fit every fold, score every set."""
    from attribution.bench import rollback_rule

    def say(text: str) -> None:
        if log:
            print(text, file=sys.stderr, flush=True)

    threshold, margin, _ = rollback_rule()
    rule = (threshold, margin)
    generated = label(data.generated)
    say(f"features: generator {len(generated)}")
    training = {f: label(cases) for f, cases in data.training.items()}
    validation = {f: label(cases) for f, cases in data.validation.items()}
    fresh = {f: label(cases) for f, cases in data.fresh.items()}
    petshop = label(data.petshop)
    say("features: nuisance and PetShop")
    lofo: list[Outcome] = []
    fresh_out: list[Outcome] = []
    for family in DEVELOPMENT_FAMILIES:
        mix = generated + [i for f, items in training.items() if f != family for i in items]
        model = fit_mix(mix, f"{version}-without-{family}")
        lofo += score(model, data.training[family], training[family], rule, family)
        lofo += score(model, data.validation[family], validation[family], rule, family)
        fresh_out += score(model, data.fresh[family], fresh[family], rule, family)
        say(f"fold {family}: done")
    full = fit_mix(generated + [i for items in training.values() for i in items], version)
    petshop_out = score(full, data.petshop, petshop, rule)
    return ValidationReport(
        lofo=summarise(lofo),
        fresh=summarise(fresh_out),
        petshop=petshop_summary(full, data.petshop, petshop),
        full_model_version=full.version,
        outcomes={
            "lofo": [asdict(o) for o in lofo],
            "fresh": [asdict(o) for o in fresh_out],
            "petshop": [asdict(o) for o in petshop_out],
        },
    )


def line(report: ValidationReport) -> str:
    """The figures as docs/attribution.md's round tables print them."""

    def nuisance(s: Summary) -> str:
        p95 = "-" if s.no_culprit_p95 is None else f"{s.no_culprit_p95:.3f}"
        precision = "-" if s.precision is None else f"{s.precision:.3f}"
        return f"{s.hr_at_1:.3f}, {s.hr_at_3:.3f}, {p95}, {precision} / {s.coverage:.3f}"

    p = report.petshop
    precision = "-" if p.precision is None else f"{p.precision:.2f}"
    return (
        f"LOFO {nuisance(report.lofo)} | seed {FRESH_SEED} {nuisance(report.fresh)} | "
        f"PetShop val {p.hr_at_1:.3f}, {p.ece:.3f}, {precision} / {p.coverage:.3f}"
    )
