"""`backout attribution bench`: ranking quality and calibration per held-out set, latency, training time."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from attribution.baselines import BASELINES
from attribution.case import Case, ChangeData, SeriesData, case_to_bundle
from attribution.generator import ScenarioGenerator
from attribution.model import MODEL_NAME, AttributionModel, LabelledIncident
from attribution.petshop import ATTRIBUTION, PetShopError, load_split
from attribution.training import HELD_OUT_SEED, TrainingConfig, label, train

ECE_BINS = 10


class ReliabilityBin(BaseModel):
    low: float
    high: float
    candidates: int
    mean_probability: float
    culprit_share: float


class RankerScores(BaseModel):
    hr_at_1: float
    hr_at_3: float
    mrr: float
    ece: float
    mean_max_probability_without_culprit: float | None
    reliability: list[ReliabilityBin] | None = None


class SetReport(BaseModel):
    incidents: int
    with_culprit: int
    without_culprit: int
    rankers: dict[str, RankerScores]
    source: str


class LatencyReport(BaseModel):
    bundles: int
    changes: int
    series: int
    points_per_series: int
    p50_ms: float
    p99_ms: float


class BenchReport(BaseModel):
    model: dict[str, str]
    sets: dict[str, SetReport]
    latency: LatencyReport
    training: dict[str, float | int | str] | None
    machine: dict[str, float | int]


def score(
    probabilities: list[np.ndarray], culprits: list[int | None], with_reliability: bool = False
) -> RankerScores:
    hits1 = hits3 = 0
    reciprocal = 0.0
    ranked = 0
    flat_p: list[np.ndarray] = []
    flat_y: list[np.ndarray] = []
    no_culprit_max: list[float] = []
    for probs, culprit in zip(probabilities, culprits, strict=True):
        labels = np.zeros(probs.size)
        if culprit is None:
            if probs.size:
                no_culprit_max.append(float(probs.max()))
        else:
            labels[culprit] = 1.0
            order = np.argsort(-probs, kind="stable")
            rank = int(np.flatnonzero(order == culprit)[0]) + 1
            hits1 += rank == 1
            hits3 += rank <= 3
            reciprocal += 1.0 / rank
            ranked += 1
        flat_p.append(probs)
        flat_y.append(labels)
    p = np.concatenate(flat_p) if flat_p else np.zeros(0)
    y = np.concatenate(flat_y) if flat_y else np.zeros(0)
    bins = np.minimum((p * ECE_BINS).astype(int), ECE_BINS - 1)
    ece = sum(abs(p[bins == b].sum() - y[bins == b].sum()) for b in range(ECE_BINS)) / max(p.size, 1)
    reliability = [
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
    return RankerScores(
        reliability=reliability if with_reliability else None,
        hr_at_1=round(hits1 / max(ranked, 1), 4),
        hr_at_3=round(hits3 / max(ranked, 1), 4),
        mrr=round(reciprocal / max(ranked, 1), 4),
        ece=round(float(ece), 4),
        mean_max_probability_without_culprit=round(float(np.mean(no_culprit_max)), 4)
        if no_culprit_max
        else None,
    )


def evaluate_set(model: AttributionModel, cases: list[Case], source: str) -> SetReport:
    incidents: list[LabelledIncident] = label(cases)
    culprits = [incident.culprit_row for incident in incidents]
    rankers = {"model": score(model.probabilities_many([i.features for i in incidents]), culprits, True)}
    for name, baseline in BASELINES.items():
        rankers[name] = score([baseline(case) for case in cases], culprits)
    with_culprit = sum(c is not None for c in culprits)
    return SetReport(
        incidents=len(cases),
        with_culprit=with_culprit,
        without_culprit=len(cases) - with_culprit,
        rankers=rankers,
        source=source,
    )


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
        data.append(SeriesData(name, services[index % 20], None, 1.0, times, values))
    candidates = [
        ChangeData(
            f"chg-{i}", services[i % 20], "image", detected - float(rng.uniform(0, 7000)), None, "v1", "v2"
        )
        for i in range(changes)
    ]
    return Case(f"latency-{number}", detected, services[0], "latency_ms", edges, candidates, data)


def measure_latency(model: AttributionModel, bundles: int = 100) -> LatencyReport:
    prepared = [case_to_bundle(latency_case(i)) for i in range(bundles)]
    model.attribute(prepared[0])  # warm up imports and caches
    timings = []
    for bundle in prepared:
        started = time.perf_counter()
        model.attribute(bundle)
        timings.append((time.perf_counter() - started) * 1000)
    return LatencyReport(
        bundles=bundles,
        changes=50,
        series=200,
        points_per_series=120,
        p50_ms=round(float(np.percentile(timings, 50)), 1),
        p99_ms=round(float(np.percentile(timings, 99)), 1),
    )


def run_bench(
    model: AttributionModel,
    synthetic: int = 2000,
    petshop_root: Path | None = None,
    training_incidents: int | None = 10_000,
) -> BenchReport:
    sets = {
        "synthetic-heldout": evaluate_set(
            model,
            ScenarioGenerator(seed=HELD_OUT_SEED).generate_many(synthetic),
            f"generator seed {HELD_OUT_SEED} (training uses another seed)",
        )
    }
    try:
        sets["petshop-test"] = evaluate_set(model, load_split("test", petshop_root, variants=3), ATTRIBUTION)
    except PetShopError as exc:
        sets["petshop-test (missing)"] = SetReport(
            incidents=0, with_culprit=0, without_culprit=0, rankers={}, source=str(exc)
        )
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
        sets=sets,
        latency=measure_latency(model),
        training=training,
        machine={"cpus": os.cpu_count() or 0, "load_1m": round(load[0], 2), "load_5m": round(load[1], 2)},
    )
