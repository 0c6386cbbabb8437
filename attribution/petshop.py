"""The PetShop dataset (Hardt et al. 2023, CC-BY-4.0) as incidents, without label leaks.

Real metrics, call graph and ground truth from amazon-science/petshop-root-cause-analysis,
vendored in `data/petshop/`. Each injected issue becomes one candidate change at the
injection time (a configuration change for `aws ssm put-parameter`, a code deploy for
`cdk deploy`); request-overload issues get no culprit at all. Synthetic distractor
changes are added on other services.

Culprits and distractors share every convention, so nothing but the evidence in the
metrics and the call graph can tell them apart:
- start time: every injection lies in the second 5-minute bucket of its issue, but not
  uniformly (most late in it), so a distractor's offset into the issue's metrics is
  drawn from the split's own injection offsets (with a little jitter):
  the most recent change is the culprit no more often than chance;
- kind: distractor kinds are drawn from the split's own culprit kinds;
- `completed_at`, versions, description, id: one function fills them for every change
  from its kind alone;
- service: one change per service, so a service's number of changes says nothing.

The dataset's `train` folders are backout's validation split (choices are made there,
nothing is trained on PetShop); its `test` folders are the test split, read once per
release. CloudWatch stamps a bucket with its start; a point here is stamped with its
bucket's end, the time its value was known. Keep the attribution wherever numbers from
it are shown.
"""

from __future__ import annotations

import csv
import json
import os
import zlib
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np

from attribution.case import Case, ChangeData, SeriesData

ATTRIBUTION = (
    "PetShop dataset: Hardt et al., 'The PetShop Dataset - Finding Causes of Performance Issues "
    "across Microservices' (2023, arXiv:2311.04806), amazon-science/petshop-root-cause-analysis, CC-BY-4.0"
)
PETSHOP_ENV = "BACKOUT_PETSHOP_DIR"
BUCKET_S = 300.0
Split = Literal["validation", "test"]
SPLIT_FOLDERS: dict[str, str] = {"validation": "train", "test": "test"}
SERIES_COLUMNS: dict[tuple[str, str], tuple[str, float]] = {
    ("latency", "Average"): ("latency", 1.0),
    ("latency", "p99"): ("latency_p99", 1.0),
    ("availability", "Average"): ("availability", -1.0),
    ("requests", "Sum"): ("requests", 1.0),
}
# Services a change can land on (deployable or configurable components of the shop).
CHANGEABLE: tuple[str, ...] = (
    "PetSite",
    "PetSearch_AWS::ECS::Fargate",
    "payforadoption_AWS::ECS::Container",
    "petlistadoptions_AWS::ECS::Fargate",
    "lambdastatusupdater_AWS::Lambda::Function",
    "lambda_step_priceGreaterThan55_AWS::Lambda::Function",
    "lambda_step_priceLessThan55_AWS::Lambda::Function",
    "lambda_step_readDDB_AWS::Lambda::Function",
    "PetAdoptionStatusUpdater/prod_AWS::ApiGateway::Stage",
    "AWS::StepFunctions::StateMachine",
    "petInfo_AWS::DynamoDB::Table",
    "petlistadoptions_client",
    "PetSearch_client",
)
# Every injection falls in the second bucket of its issue's metrics (checked by a test).
CHANGE_WINDOW_BUCKETS = (1.0, 2.0)
OFFSET_JITTER_S = 20.0


class PetShopError(RuntimeError):
    """The dataset directory is missing or malformed."""


def default_root() -> Path:
    configured = os.environ.get(PETSHOP_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[1] / "data" / "petshop"


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


def bucket_starts(metrics_file: Path) -> np.ndarray:
    with metrics_file.open(newline="") as handle:
        rows = list(csv.reader(handle))
    return np.array([float(row[0]) for row in rows[4:]])


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


def injected_kind(command: str) -> str | None:
    if "ssm put-parameter" in command:
        return "config"
    if "cdk deploy" in command:
        return "image"
    return None  # request overload: load, not a change


def make_change(rng: np.random.Generator, service: str, kind: str, started: float) -> ChangeData:
    """Every change, culprit or not, gets its fields from this one function."""
    duration = float(rng.uniform(5, 40)) if kind == "config" else float(rng.uniform(60, 600))
    build = int(rng.integers(100, 999))
    return ChangeData(
        id="",
        service=service,
        kind=kind,
        started=started,
        completed=started + duration if rng.random() < 0.5 else None,
        from_version=f"{kind}-{build}",
        to_version=f"{kind}-{build + 1}",
    )


def issue_key(issue_dir: Path) -> str:
    return f"{issue_dir.parents[1].name}/{issue_dir.parent.name}/{issue_dir.name}"


def injection_offset(issue_dir: Path) -> float:
    """Seconds from the issue's first bucket start to its injection."""
    target = json.loads((issue_dir / "target.json").read_text())
    return float(target["target"]["timestamp"]) - float(bucket_starts(issue_dir / "metrics.csv")[0])


def load_issue(
    issue_dir: Path, kinds: dict[str, float], offsets: np.ndarray, variant: int = 0, seed: int = 11
) -> Case:
    """One PetShop issue as a case; `variant` draws another set of distractor changes.

    `kinds` is the share of each change kind among the split's culprits and `offsets`
    the injections' offsets into their issues' metrics: distractors draw their kind
    and start from them, so that neither says anything about guilt.
    """
    target = json.loads((issue_dir / "target.json").read_text())
    scenario = issue_dir.parents[1]
    edges = _edges(scenario / "graph.csv")
    series = _series(issue_dir / "metrics.csv")
    key = issue_key(issue_dir)
    rng = np.random.default_rng([seed, zlib.crc32(key.encode()), variant])
    first_bucket = float(bucket_starts(issue_dir / "metrics.csv")[0])
    low, high = (first_bucket + BUCKET_S * edge for edge in CHANGE_WINDOW_BUCKETS)

    def distractor_start() -> float:
        drawn = (
            first_bucket + float(rng.choice(offsets)) + float(rng.uniform(-OFFSET_JITTER_S, OFFSET_JITTER_S))
        )
        return float(np.clip(drawn, low, high - 1.0))

    detected = float(max(s.times[-1] for s in series))
    command = target["metadata"]["reproducibility"]["command"]
    kind = injected_kind(command)
    root_cause = target["root_cause"]["node"]
    changes: list[ChangeData] = []
    culprit: ChangeData | None = None
    if kind is not None:
        culprit = make_change(rng, root_cause, kind, float(target["target"]["timestamp"]))
        changes.append(culprit)
    present = {s for edge in edges for s in edge} | {s.service for s in series}
    pool = [s for s in CHANGEABLE if s in present and s != root_cause]
    kind_names = sorted(kinds)
    kind_shares = np.array([kinds[name] for name in kind_names])
    count = int(rng.integers(3, 9))
    for service in rng.choice(pool, size=min(count, len(pool)), replace=False):
        distractor_kind = str(rng.choice(kind_names, p=kind_shares / kind_shares.sum()))
        changes.append(make_change(rng, str(service), distractor_kind, distractor_start()))
    order = rng.permutation(len(changes))
    changes = [changes[i] for i in order]
    for change, number in zip(changes, rng.permutation(900)[: len(changes)] + 100, strict=True):
        change.id = f"chg-{number}"
    return Case(
        incident_id=f"petshop-{key.replace('/', '-')}-v{variant}",
        detected_at=detected,
        symptom_service=target["target"]["node"],
        symptom_metric=SERIES_COLUMNS[(target["target"]["metric"], "Average")][0],
        edges=edges,
        changes=changes,
        series=series,
        culprit_id=culprit.id if culprit else None,
        extra={"issue": key, "root_cause": root_cause, "command": command},
    )


def issue_dirs(split: Split, root: Path | None = None) -> list[Path]:
    if split not in SPLIT_FOLDERS:
        raise PetShopError(f"unknown PetShop split {split!r} (validation or test)")
    base = _dataset_dir(root or default_root())
    issues = sorted(
        base.glob(f"*/{SPLIT_FOLDERS[split]}/issue_*"),
        key=lambda p: (p.parents[1].name, int(p.name.split("_")[1])),
    )
    if not issues:
        raise PetShopError(f"no PetShop issues in {base}/*/{SPLIT_FOLDERS[split]}")
    return issues


def culprit_kinds(issues: list[Path]) -> dict[str, float]:
    counts = Counter(
        injected_kind(
            json.loads((issue / "target.json").read_text())["metadata"]["reproducibility"]["command"]
        )
        for issue in issues
    )
    counts.pop(None, None)
    total = sum(counts.values()) or 1
    return {str(kind): count / total for kind, count in sorted(counts.items()) if kind} or {"config": 1.0}


def load_split(split: Split, root: Path | None = None, variants: int = 1, seed: int = 11) -> list[Case]:
    """Every issue of `split` ("validation" or "test") in every scenario, `variants` times each."""
    issues = issue_dirs(split, root)
    kinds = culprit_kinds(issues)
    offsets = np.array([injection_offset(issue) for issue in issues])
    return [
        load_issue(issue, kinds, offsets, variant, seed) for issue in issues for variant in range(variants)
    ]
