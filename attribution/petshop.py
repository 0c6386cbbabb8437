"""PetShop root-cause dataset (Hardt et al. 2023, arXiv 2311.04806, CC-BY-4.0) as incident cases.

Real metrics, call graph and ground truth from amazon-science/petshop-root-cause-analysis;
the injected issue becomes one candidate change at the issue time (a configuration
change for `aws ssm put-parameter`, a code deploy for `cdk deploy`), request-overload
issues get no culprit at all, and every incident gets synthetic distractor changes
before and after the injection. CloudWatch stamps a bucket with its start; here a point
is stamped with its bucket's end, the time its value was known, as a scraped series would be.
Keep the attribution wherever numbers from it are shown.
"""

from __future__ import annotations

import csv
import json
import os
import zlib
from pathlib import Path

import numpy as np

from attribution.case import Case, ChangeData, SeriesData

ATTRIBUTION = (
    "PetShop dataset: Hardt et al., 'Root Cause Analyses on PetShop Application' (2023), "
    "amazon-science/petshop-root-cause-analysis, CC-BY-4.0"
)
PETSHOP_ENV = "BACKOUT_PETSHOP_DIR"
BUCKET_S = 300.0
SERIES_COLUMNS: dict[tuple[str, str], tuple[str, float]] = {
    ("latency", "Average"): ("latency", 1.0),
    ("latency", "p99"): ("latency_p99", 1.0),
    ("availability", "Average"): ("availability", -1.0),
    ("requests", "Sum"): ("requests", 1.0),
}
DISTRACTOR_KINDS: dict[str, list[str]] = {
    "PetSite": ["image", "config", "scale", "flag"],
    "PetSearch_AWS::ECS::Fargate": ["image", "config", "scale"],
    "payforadoption_AWS::ECS::Container": ["image", "config", "scale"],
    "petlistadoptions_AWS::ECS::Fargate": ["image", "config", "scale"],
    "lambdastatusupdater_AWS::Lambda::Function": ["image", "config"],
    "lambda_step_priceGreaterThan55_AWS::Lambda::Function": ["image", "config"],
    "lambda_step_priceLessThan55_AWS::Lambda::Function": ["image", "config"],
    "lambda_step_readDDB_AWS::Lambda::Function": ["image", "config"],
    "PetAdoptionStatusUpdater/prod_AWS::ApiGateway::Stage": ["config"],
    "AWS::StepFunctions::StateMachine": ["config", "image"],
    "petInfo_AWS::DynamoDB::Table": ["scale", "config"],
    "petlistadoptions_client": ["image", "config"],
    "PetSearch_client": ["image", "config"],
}


class PetShopError(RuntimeError):
    """The dataset directory is missing or malformed."""


def default_root() -> Path:
    configured = os.environ.get(PETSHOP_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "shared" / "datasets" / "petshop"


def _dataset_dir(root: Path) -> Path:
    candidate = root / "dataset"
    if candidate.is_dir():
        return candidate
    if root.is_dir() and any((root / scenario / "graph.csv").exists() for scenario in os.listdir(root)):
        return root
    raise PetShopError(f"PetShop dataset not found under {root} (set {PETSHOP_ENV})")


def _edges(graph_file: Path) -> list[tuple[str, str]]:
    with graph_file.open(newline="") as handle:
        rows = list(csv.reader(handle))
    callees = rows[0][1:]
    return [
        (row[0], callees[j])
        for row in rows[1:]
        for j, cell in enumerate(row[1:])
        if cell and float(cell) != 0.0
    ]


def _series(metrics_file: Path) -> list[SeriesData]:
    with metrics_file.open(newline="") as handle:
        rows = list(csv.reader(handle))
    components, metrics, statistics = rows[0], rows[1], rows[2]
    data = rows[4:]
    # CloudWatch stamps each bucket with its start; a bundle point is the value observed up to its time.
    times = np.array([float(row[0]) for row in data]) + BUCKET_S
    out = []
    for column in range(1, len(components)):
        spec = SERIES_COLUMNS.get((metrics[column], statistics[column]))
        if spec is None:
            continue
        cells = [row[column] for row in data]
        present = np.array([cell != "" for cell in cells])
        if present.sum() < 2:
            continue
        values = np.array([float(cell) for cell in cells if cell != ""])
        out.append(SeriesData(spec[0], components[column], None, spec[1], times[present], values))
    return out


def _injected_kind(command: str) -> str | None:
    if "ssm put-parameter" in command:
        return "config"
    if "cdk deploy" in command:
        return "image"
    return None  # request overload: load, not a change


def load_issue(issue_dir: Path, variant: int = 0, seed: int = 11) -> Case:
    """One PetShop issue as a case; `variant` draws another set of distractor changes."""
    target = json.loads((issue_dir / "target.json").read_text())
    scenario = issue_dir.parents[1]
    edges = _edges(scenario / "graph.csv")
    series = _series(issue_dir / "metrics.csv")
    name = f"petshop-{scenario.name}-{issue_dir.parent.name}-{issue_dir.name}"
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), variant])
    injected_at = float(target["target"]["timestamp"])
    detected = float(max(s.times[-1] for s in series))
    command = target["metadata"]["reproducibility"]["command"]
    kind = _injected_kind(command)
    changes: list[ChangeData] = []
    culprit: ChangeData | None = None
    if kind is not None:
        culprit = ChangeData(
            id="culprit",
            service=target["root_cause"]["node"],
            kind=kind,
            started=injected_at,
            completed=injected_at + (15.0 if kind == "config" else 90.0),
            description=command[:120],
        )
        changes.append(culprit)
    services = sorted({s for edge in edges for s in edge} & set(DISTRACTOR_KINDS))
    for _ in range(int(rng.integers(3, 9))):
        changes.append(_distractor(rng, services, detected - float(rng.uniform(0, 7200))))
    if rng.random() < 0.5:
        changes.append(_distractor(rng, services, float(rng.uniform(injected_at, detected))))
    rng.shuffle(changes)  # type: ignore[arg-type]
    for change, number in zip(changes, rng.permutation(900)[: len(changes)] + 100, strict=True):
        change.id = f"chg-{number}"
    return Case(
        incident_id=f"{name}-v{variant}",
        detected_at=detected,
        symptom_service=target["target"]["node"],
        symptom_metric=SERIES_COLUMNS[(target["target"]["metric"], "Average")][0],
        edges=edges,
        changes=changes,
        series=series,
        culprit_id=culprit.id if culprit else None,
        extra={"root_cause": target["root_cause"]["node"], "command": command},
    )


def _distractor(rng: np.random.Generator, services: list[str], started: float) -> ChangeData:
    service = str(rng.choice(services))
    kind = str(rng.choice(DISTRACTOR_KINDS[service]))
    duration = float(rng.uniform(20, 400)) if kind in ("image", "scale") else 0.0
    build = int(rng.integers(100, 999))
    return ChangeData(
        id="distractor",
        service=service,
        kind=kind,
        started=started,
        completed=started + duration if duration else None,
        from_version=f"{kind}-{build}",
        to_version=f"{kind}-{build + 1}",
    )


def load_split(split: str, root: Path | None = None, variants: int = 1, seed: int = 11) -> list[Case]:
    """Every issue of `split` ("train" or "test") in every scenario, `variants` times each."""
    base = _dataset_dir(root or default_root())
    issues = sorted(
        base.glob(f"*/{split}/issue_*"), key=lambda p: (p.parents[1].name, int(p.name.split("_")[1]))
    )
    if not issues:
        raise PetShopError(f"no PetShop issues in {base}/*/{split}")
    return [load_issue(issue, variant, seed) for issue in issues for variant in range(variants)]
