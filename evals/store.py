"""Eval runs on disk under <state_dir>/evals/<set name>/: runs, the pinned baseline and the score history.

Every file is written to a temporary name and renamed into place, so a reader never sees a
partial file under the final name.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from evals.golden import EvalInputError, load_results
from evals.models import ItemResult, RunSummary


class BaselinePin(BaseModel):
    run_id: str
    pinned_at: datetime
    source: str
    pass_rate: float
    n: int


class HistoryPoint(BaseModel):
    run_id: str
    time: datetime
    pass_rate: float
    mean_score: float
    regression: bool | None = None
    p_value: float | None = None
    look: int | None = None


def new_run_id(now: datetime | None = None, suffix: str | None = None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{suffix or secrets.token_hex(3)}"


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def results_text(results: list[ItemResult]) -> str:
    return "".join(result.model_dump_json() + "\n" for result in results)


class EvalStore:
    def __init__(self, state_dir: Path, set_name: str) -> None:
        self.root = Path(state_dir) / "evals" / set_name

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_path(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.jsonl"

    def summary_path(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.summary.json"

    @property
    def baseline_file(self) -> Path:
        return self.root / "baseline.json"

    @property
    def baseline_results_file(self) -> Path:
        return self.root / "baseline.jsonl"

    @property
    def history_file(self) -> Path:
        return self.root / "history.jsonl"

    def save_run(self, summary: RunSummary, results: list[ItemResult]) -> Path:
        path = self.run_path(summary.run_id)
        atomic_write_text(path, results_text(results))
        stored = summary.model_copy(update={"results_path": str(path)})
        atomic_write_text(self.summary_path(summary.run_id), stored.model_dump_json(indent=2) + "\n")
        return path

    def run_ids(self) -> list[str]:
        """Completed runs (those with a summary), oldest first; run ids sort by time."""
        if not self.runs_dir.exists():
            return []
        return sorted(
            path.name.removesuffix(".summary.json") for path in self.runs_dir.glob("*.summary.json")
        )

    def load_summary(self, run_id: str) -> RunSummary:
        path = self.summary_path(run_id)
        if not path.exists():
            raise EvalInputError(f"run {run_id!r}: not found under {self.runs_dir}")
        return RunSummary.model_validate_json(path.read_text(encoding="utf-8"))

    def load_run(self, run_id: str) -> list[ItemResult]:
        self.load_summary(run_id)
        return load_results(self.run_path(run_id))

    def pin_baseline(self, source: str, now: datetime | None = None) -> BaselinePin:
        """Pin a stored run id, or any results file path, as the baseline."""
        if source in self.run_ids():
            results, run_id = self.load_run(source), source
        elif Path(source).is_file():
            results, run_id = load_results(source), Path(source).name.removesuffix(".jsonl")
        else:
            known = ", ".join(self.run_ids()[-5:]) or "none"
            raise EvalInputError(
                f"--from {source!r}: neither a stored run id (latest: {known}) nor a results file"
            )
        pin = BaselinePin(
            run_id=run_id,
            pinned_at=now or datetime.now(UTC),
            source=source,
            pass_rate=round(sum(r.passed for r in results) / len(results), 6),
            n=len(results),
        )
        atomic_write_text(self.baseline_results_file, results_text(results))
        atomic_write_text(self.baseline_file, pin.model_dump_json(indent=2) + "\n")
        return pin

    def baseline(self) -> tuple[BaselinePin, list[ItemResult]] | None:
        if not self.baseline_file.exists():
            return None
        pin = BaselinePin.model_validate_json(self.baseline_file.read_text(encoding="utf-8"))
        return pin, load_results(self.baseline_results_file)

    def runs_after(self, moment: datetime, exclude: str | None = None) -> list[str]:
        """Run ids that finished after `moment` (e.g. since the baseline was pinned)."""
        chosen = []
        for run_id in self.run_ids():
            if run_id == exclude:
                continue
            if self.load_summary(run_id).finished_at >= moment:
                chosen.append(run_id)
        return chosen

    def append_history(self, point: HistoryPoint) -> None:
        existing = self.history_file.read_text(encoding="utf-8") if self.history_file.exists() else ""
        lines = [line for line in existing.splitlines() if line.strip()]
        kept = [line for line in lines if json.loads(line).get("run_id") != point.run_id]
        atomic_write_text(self.history_file, "\n".join([*kept, point.model_dump_json()]) + "\n")

    def history(self, limit: int | None = None) -> list[HistoryPoint]:
        if not self.history_file.exists():
            return []
        points = [
            HistoryPoint.model_validate_json(line)
            for line in self.history_file.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        points.sort(key=lambda point: point.time)
        return points[-limit:] if limit else points
