"""`backout attribution bench`: ranking quality and calibration per data set, with intervals and baselines.

Per set: HR@1, HR@3, MRR, ECE and Brier score with 95 % bootstrap intervals
(resampling incidents; for PetShop, resampling the underlying issues, since each issue
appears with several draws of distractors), beside the baselines measured on the same
incidents; the distribution of the top probability on incidents without a culprit;
the coverage and precision of automatic rollback at the shipped runbook threshold.
Also: a reliability diagram (PNG), latency per bundle against a floor measured in the
same run, and optionally the training time.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from attribution.baselines import BASELINES
from attribution.case import Case, ChangeData, SeriesData, case_to_bundle
from attribution.evidence import extract
from attribution.generator import ScenarioGenerator
from attribution.model import MODEL_NAME, AttributionModel
from attribution.petshop import ATTRIBUTION, load_split
from attribution.splits import (
    DEVELOPMENT_FAMILIES,
    HELD_OUT_FAMILIES,
    TEST_NUISANCE_SEED,
    VALIDATION_NUISANCE_SEED,
)
from attribution.training import HELD_OUT_SEED, TrainingConfig, nuisance_cases, train

ECE_BINS = 10
BOOTSTRAP = 1000
RUNBOOK = Path(__file__).resolve().parents[1] / "runbooks" / "library" / "llm-quality-rollback.yaml"
SET_NAMES = ("petshop-validation", "petshop-test", "nuisance-development", "nuisance-held-out", "generator")


class Interval(BaseModel):
    value: float
    low: float
    high: float


class RankerScores(BaseModel):
    hr_at_1: Interval
    hr_at_3: Interval
    mrr: Interval
    ece: Interval
    brier: Interval


class TopProbability(BaseModel):
    """The top probability given to any change on incidents that have no culprit."""

    incidents: int
    p50: float | None
    p90: float | None
    p95: float | None
    max: float | None


class AutoRollback(BaseModel):
    rule: str
    threshold: float
    margin: float
    acted: int
    correct: int
    coverage: Interval  # share of incidents where the top change clears the rule
    precision: Interval | None  # share of those where the top change is the culprit


class ReliabilityBin(BaseModel):
    low: float
    high: float
    candidates: int
    mean_probability: float
    culprit_share: float


class SetReport(BaseModel):
    source: str
    incidents: int
    with_culprit: int
    without_culprit: int
    groups: int  # bootstrap units (incidents, or PetShop issues)
    rankers: dict[str, RankerScores]
    no_culprit_top_probability: dict[str, TopProbability]
    auto_rollback: AutoRollback
    reliability: list[ReliabilityBin]
    families: dict[str, dict[str, float]] | None = None


class LatencyReport(BaseModel):
    bundles: int
    changes: int
    series: int
    points_per_series: int
    p50_ms: float
    p99_ms: float
    floor_p50_ms: float  # parsing the same bundle into a case (the unavoidable part), same run
    ratio_p50: float


class BenchReport(BaseModel):
    model: dict[str, str]
    sets: dict[str, SetReport]
    reliability_png: str | None
    latency: LatencyReport | None
    training: dict[str, float | int | str] | None
    machine: dict[str, float | int]


@dataclass(slots=True)
class _Scored:
    """One incident's probabilities under one ranker, and its truth."""

    probabilities: np.ndarray
    culprit: int | None


def rollback_rule(path: Path = RUNBOOK) -> tuple[float, float, str]:
    """The shipped automatic-rollback condition: (top probability, margin, the expression)."""
    text = path.read_text(encoding="utf-8")
    for line in text.splitlines():
        if "attribution.top.probability" in line and "if:" in line:
            probability = re.search(r"attribution\.top\.probability\s*>=\s*([0-9.]+)", line)
            margin = re.search(r"attribution\.margin\s*>=\s*([0-9.]+)", line)
            if probability:
                expression = line.split("if:", 1)[1].strip()
                return float(probability.group(1)), float(margin.group(1)) if margin else 0.0, expression
    raise ValueError(f"{path}: no 'attribution.top.probability >= X' condition found")


def _rank(probabilities: np.ndarray, culprit: int) -> int:
    order = np.argsort(-probabilities, kind="stable")
    return int(np.flatnonzero(order == culprit)[0]) + 1


def _group_stats(scored: list[_Scored], rule: tuple[float, float]) -> dict[str, np.ndarray]:
    """Per-incident sums from which every metric (and every bootstrap resample) is computed."""
    n = len(scored)
    stats = {
        key: np.zeros(n)
        for key in ("ranked", "hit1", "hit3", "rr", "brier", "candidates", "acted", "correct", "incidents")
    }
    stats["bin_p"] = np.zeros((n, ECE_BINS))
    stats["bin_y"] = np.zeros((n, ECE_BINS))
    stats["bin_n"] = np.zeros((n, ECE_BINS))
    threshold, margin = rule
    for k, item in enumerate(scored):
        p = item.probabilities
        y = np.zeros(p.size)
        stats["incidents"][k] = 1
        if item.culprit is not None:
            y[item.culprit] = 1.0
            rank = _rank(p, item.culprit)
            stats["ranked"][k] = 1
            stats["hit1"][k] = rank == 1
            stats["hit3"][k] = rank <= 3
            stats["rr"][k] = 1.0 / rank
        null_p = max(0.0, 1.0 - float(p.sum()))
        null_y = 1.0 if item.culprit is None else 0.0
        stats["brier"][k] = float(((p - y) ** 2).sum()) + (null_p - null_y) ** 2
        bins = np.minimum((p * ECE_BINS).astype(int), ECE_BINS - 1)
        np.add.at(stats["bin_p"][k], bins, p)
        np.add.at(stats["bin_y"][k], bins, y)
        np.add.at(stats["bin_n"][k], bins, 1.0)
        stats["candidates"][k] = p.size
        if p.size:
            ordered = np.sort(p)[::-1]
            top, runner_up = float(ordered[0]), float(ordered[1]) if p.size > 1 else 0.0
            if top >= threshold and top - runner_up >= margin:
                stats["acted"][k] = 1
                stats["correct"][k] = item.culprit is not None and int(np.argmax(p)) == item.culprit
    return stats


def _metrics(stats: dict[str, np.ndarray], weights: np.ndarray) -> dict[str, float]:
    def total(key: str) -> float:
        return float(weights @ stats[key])

    ranked = max(total("ranked"), 1e-12)
    candidates = max(total("candidates"), 1e-12)
    bin_p = weights @ stats["bin_p"]
    bin_y = weights @ stats["bin_y"]
    acted = total("acted")
    return {
        "hr_at_1": total("hit1") / ranked,
        "hr_at_3": total("hit3") / ranked,
        "mrr": total("rr") / ranked,
        "ece": float(np.abs(bin_p - bin_y).sum()) / candidates,
        "brier": total("brier") / max(total("incidents"), 1e-12),
        "coverage": acted / max(total("incidents"), 1e-12),
        "precision": total("correct") / acted if acted else float("nan"),
    }


def _group_weights(groups: list[str], rng: np.random.Generator, count: int) -> np.ndarray:
    """Bootstrap resamples as weights per incident: each resample draws whole groups with replacement."""
    names, index = np.unique(np.array(groups), return_inverse=True)
    draws = rng.integers(0, names.size, size=(count, names.size))
    per_group = np.apply_along_axis(np.bincount, 1, draws, minlength=names.size)
    return per_group[:, index].astype(float)


def _interval(point: float, samples: np.ndarray) -> Interval:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return Interval(value=round(point, 4), low=round(point, 4), high=round(point, 4))
    low, high = np.percentile(finite, [2.5, 97.5])
    return Interval(value=round(point, 4), low=round(float(low), 4), high=round(float(high), 4))


def score_ranker(
    scored: list[_Scored], groups: list[str], rule: tuple[float, float], bootstrap: int, seed: int = 0
) -> tuple[RankerScores, dict[str, Interval]]:
    stats = _group_stats(scored, rule)
    point = _metrics(stats, np.ones(len(scored)))
    resamples = _group_weights(groups, np.random.default_rng(seed), bootstrap)
    samples: dict[str, list[float]] = {key: [] for key in point}
    for weights in resamples:
        for key, value in _metrics(stats, weights).items():
            samples[key].append(value)
    intervals = {key: _interval(point[key], np.array(values)) for key, values in samples.items()}
    scores = RankerScores(**{key: intervals[key] for key in ("hr_at_1", "hr_at_3", "mrr", "ece", "brier")})
    return scores, intervals


def _top_probability(scored: list[_Scored]) -> TopProbability:
    tops = [float(s.probabilities.max()) for s in scored if s.culprit is None and s.probabilities.size]
    if not tops:
        return TopProbability(incidents=0, p50=None, p90=None, p95=None, max=None)
    values = np.array(tops)
    return TopProbability(
        incidents=len(tops),
        p50=round(float(np.percentile(values, 50)), 4),
        p90=round(float(np.percentile(values, 90)), 4),
        p95=round(float(np.percentile(values, 95)), 4),
        max=round(float(values.max()), 4),
    )


def _reliability(scored: list[_Scored]) -> list[ReliabilityBin]:
    p = np.concatenate([s.probabilities for s in scored]) if scored else np.zeros(0)
    y = (
        np.concatenate(
            [
                np.eye(s.probabilities.size)[s.culprit]
                if s.culprit is not None
                else np.zeros(s.probabilities.size)
                for s in scored
            ]
        )
        if scored
        else np.zeros(0)
    )
    bins = np.minimum((p * ECE_BINS).astype(int), ECE_BINS - 1)
    return [
        ReliabilityBin(
            low=b / ECE_BINS,
            high=(b + 1) / ECE_BINS,
            candidates=int((bins == b).sum()),
            mean_probability=round(float(p[bins == b].mean()), 4),
            culprit_share=round(float(y[bins == b].mean()), 4),
        )
        for b in range(ECE_BINS)
        if (bins == b).any()
    ]


def evaluate_set(
    model: AttributionModel,
    cases: list[Case],
    source: str,
    groups: list[str] | None = None,
    bootstrap: int = BOOTSTRAP,
    rule: tuple[float, float, str] | None = None,
) -> SetReport:
    """Score the model and every baseline on `cases`; `groups` names each case's bootstrap unit."""
    threshold, margin, expression = rule or rollback_rule()
    groups = groups or [case.incident_id for case in cases]
    culprits: list[int | None] = []
    model_scored: list[_Scored] = []
    for case in cases:
        features, _, incident = extract(case)
        rows = [row for row, change in enumerate(case.changes) if change.id == case.culprit_id]
        culprit = rows[0] if rows else None
        culprits.append(culprit)
        model_scored.append(_Scored(model.probabilities(features, incident.null_features), culprit))
    rankers: dict[str, RankerScores] = {}
    tops: dict[str, TopProbability] = {}
    scores, intervals = score_ranker(model_scored, groups, (threshold, margin), bootstrap)
    rankers["model"] = scores
    tops["model"] = _top_probability(model_scored)
    for name, baseline in BASELINES.items():
        scored = [_Scored(baseline(case), culprit) for case, culprit in zip(cases, culprits, strict=True)]
        rankers[name], _ = score_ranker(scored, groups, (threshold, margin), bootstrap)
        tops[name] = _top_probability(scored)
    stats = _group_stats(model_scored, (threshold, margin))
    acted = int(stats["acted"].sum())
    with_culprit = sum(c is not None for c in culprits)
    families: dict[str, dict[str, float]] | None = None
    if any("family" in case.extra for case in cases):
        families = {}
        for family in sorted({str(case.extra.get("family")) for case in cases}):
            members = [
                s for s, case in zip(model_scored, cases, strict=True) if case.extra.get("family") == family
            ]
            member_stats = _group_stats(members, (threshold, margin))
            point = _metrics(member_stats, np.ones(len(members)))
            families[family] = {
                "incidents": len(members),
                "hr_at_1": round(point["hr_at_1"], 4) if member_stats["ranked"].sum() else float("nan"),
                "hr_at_3": round(point["hr_at_3"], 4) if member_stats["ranked"].sum() else float("nan"),
                "no_culprit_top_p95": _top_probability(members).p95 or float("nan"),
            }
    return SetReport(
        source=source,
        incidents=len(cases),
        with_culprit=with_culprit,
        without_culprit=len(cases) - with_culprit,
        groups=len(set(groups)),
        rankers=rankers,
        no_culprit_top_probability=tops,
        auto_rollback=AutoRollback(
            rule=expression,
            threshold=threshold,
            margin=margin,
            acted=acted,
            correct=int(stats["correct"].sum()),
            coverage=intervals["coverage"],
            precision=intervals["precision"] if acted else None,
        ),
        reliability=_reliability(model_scored),
        families=families,
    )


# --- the data sets ------------------------------------------------------------------------------
def petshop_set(split: str, variants: int) -> tuple[list[Case], list[str], str]:
    cases = load_split(split, variants=variants)  # type: ignore[arg-type]
    note = f"PetShop {split} split ({'dataset train folders' if split == 'validation' else 'dataset test folders'}), "
    return (
        cases,
        [str(c.extra["issue"]) for c in cases],
        note + f"{variants} distractor draws per issue; {ATTRIBUTION}",
    )


def nuisance_set(held_out: bool, per_family: int) -> tuple[list[Case], list[str], str]:
    families = HELD_OUT_FAMILIES if held_out else DEVELOPMENT_FAMILIES
    seed = TEST_NUISANCE_SEED if held_out else VALIDATION_NUISANCE_SEED
    cases = nuisance_cases(families, seed, per_family)
    kind = (
        "held-out families (never trained or tuned on)"
        if held_out
        else "development families (in the training mix; other incidents)"
    )
    return (
        cases,
        [c.incident_id for c in cases],
        f"attribution.nuisance {kind}, seed {seed}: {', '.join(families)}",
    )


def generator_set(count: int) -> tuple[list[Case], list[str], str]:
    cases = ScenarioGenerator(seed=HELD_OUT_SEED).generate_many(count)
    return (
        cases,
        [c.incident_id for c in cases],
        f"backout's own generator, seed {HELD_OUT_SEED} (a sanity check only)",
    )


SetLoader = Callable[[], tuple[list[Case], list[str], str]]


def set_loaders(variants: int, per_family: int, generated: int) -> dict[str, SetLoader]:
    return {
        "petshop-validation": lambda: petshop_set("validation", variants),
        "petshop-test": lambda: petshop_set("test", variants),
        "nuisance-development": lambda: nuisance_set(False, per_family),
        "nuisance-held-out": lambda: nuisance_set(True, per_family),
        "generator": lambda: generator_set(generated),
    }


# --- latency ----------------------------------------------------------------------------------------
def latency_case(number: int, changes: int = 50, series: int = 200, points: int = 120) -> Case:
    """A large incident: `changes` candidates and `series` one-minute series over two hours."""
    rng = np.random.default_rng([99, number])
    services = [f"svc-{i}" for i in range(20)]
    edges = [(services[i], services[j]) for i in range(20) for j in (2 * i + 1, 2 * i + 2) if j < 20]
    detected = 1.8e9
    times = detected - 60.0 * np.arange(points)[::-1]
    names = ["error_rate", "latency_ms", "cpu", "memory", "latency_p99_ms"]
    data = []
    for index in range(series):
        values = rng.normal(100, 5, points)
        values[int(points * 0.8) :] += rng.uniform(0, 30)
        name = names[index % len(names)]
        version = None if index % 3 else ("v1" if index % 2 else "v2")
        data.append(SeriesData(name, services[index % 20], version, 1.0, times, values))
    candidates = [
        ChangeData(
            f"chg-{i}", services[i % 20], "image", detected - float(rng.uniform(0, 7000)), None, "v1", "v2"
        )
        for i in range(changes)
    ]
    return Case(f"latency-{number}", detected, services[0], "latency_ms", edges, candidates, data)


def measure_latency(model: AttributionModel, bundles: int = 60) -> LatencyReport:
    from attribution.case import case_from_bundle

    prepared = [case_to_bundle(latency_case(i)) for i in range(bundles)]
    model.attribute(prepared[0])  # warm up imports and caches
    timings, floors = [], []
    for bundle in prepared:
        started = time.perf_counter()
        case_from_bundle(bundle)
        floors.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        model.attribute(bundle)
        timings.append((time.perf_counter() - started) * 1000)
    p50, floor = float(np.percentile(timings, 50)), float(np.percentile(floors, 50))
    return LatencyReport(
        bundles=bundles,
        changes=50,
        series=200,
        points_per_series=120,
        p50_ms=round(p50, 1),
        p99_ms=round(float(np.percentile(timings, 99)), 1),
        floor_p50_ms=round(floor, 2),
        ratio_p50=round(p50 / max(floor, 1e-6), 1),
    )


# --- the reliability diagram -------------------------------------------------------------------
def write_reliability_png(sets: dict[str, SetReport], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 6.0), dpi=110)
    axis.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="perfect calibration")
    for name, report in sets.items():
        bins = [b for b in report.reliability if b.candidates >= 5]
        if not bins:
            continue
        axis.plot(
            [b.mean_probability for b in bins],
            [b.culprit_share for b in bins],
            marker="o",
            linewidth=1.5,
            label=f"{name} (ECE {report.rankers['model'].ece.value:.3f})",
        )
    axis.set_xlabel("predicted probability (bin mean)")
    axis.set_ylabel("share that was the culprit")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_title("Attribution reliability per data set")
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def run_bench(
    model: AttributionModel,
    sets: tuple[str, ...] = SET_NAMES,
    variants: int = 5,
    per_family: int = 40,
    generated: int = 300,
    bootstrap: int = BOOTSTRAP,
    png: Path | None = None,
    latency: bool = True,
    training_incidents: int | None = None,
) -> BenchReport:
    loaders = set_loaders(variants, per_family, generated)
    unknown = [name for name in sets if name not in loaders]
    if unknown:
        raise ValueError(f"unknown bench set(s) {', '.join(unknown)}; known: {', '.join(loaders)}")
    rule = rollback_rule()
    reports: dict[str, SetReport] = {}
    for name in sets:
        cases, groups, source = loaders[name]()
        reports[name] = evaluate_set(model, cases, source, groups, bootstrap, rule)
    if png is not None:
        write_reliability_png(reports, png)
    training = None
    if training_incidents:
        _, report = train(TrainingConfig(synthetic=training_incidents))
        training = {
            "incidents": report.incidents,
            "total_seconds": report.total_seconds,
            "generate_seconds": report.generate_seconds,
            "features_seconds": report.features_seconds,
            "fit_seconds": report.fit_seconds,
        }
    load = os.getloadavg()
    return BenchReport(
        model={"name": MODEL_NAME, "version": model.version},
        sets=reports,
        reliability_png=str(png) if png is not None else None,
        latency=measure_latency(model) if latency else None,
        training=training,
        machine={"cpus": os.cpu_count() or 0, "load_1m": round(load[0], 2), "load_5m": round(load[1], 2)},
    )
