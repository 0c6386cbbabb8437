"""Eval runs on disk under <state_dir>/evals/<set name>/: runs, the pinned baseline and the score history.

Every file is written to a temporary name and renamed into place, so a reader never sees a
partial file under the final name.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from evals.golden import EvalInputError, load_results
from evals.models import ItemResult, RunSummary


class BaselinePin(BaseModel):
    run_ids: list[str]
    pinned_at: datetime
    sources: list[str]
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
    # Microseconds: run ids sort by time, also for runs that finish within the same second.
    return f"{moment:%Y%m%dT%H%M%S%fZ}-{suffix or secrets.token_hex(3)}"


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
    def baseline_dir(self) -> Path:
        return self.root / "baseline"

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

    def _resolve(self, source: str) -> tuple[str, list[ItemResult]]:
        if source in self.run_ids():
            return source, self.load_run(source)
        if Path(source).is_file():
            return Path(source).name.removesuffix(".jsonl"), load_results(source)
        known = ", ".join(self.run_ids()[-5:]) or "none"
        raise EvalInputError(
            f"--from {source!r}: neither a stored run id (latest: {known}) nor a results file"
        )

    def pin_baseline(self, sources: list[str], runs: int = 1, now: datetime | None = None) -> BaselinePin:
        """Pin stored run ids or results files as the baseline.

        One stored run id with runs > 1 pins that run and the runs stored just before it.
        """
        if not sources:
            raise EvalInputError("--from: give at least one run id or results file")
        chosen = list(sources)
        stored = self.run_ids()
        if len(chosen) == 1 and runs > 1 and chosen[0] in stored:
            position = stored.index(chosen[0])
            chosen = stored[max(0, position - runs + 1) : position + 1]
            if len(chosen) < runs:
                raise EvalInputError(
                    f"--from {sources[0]!r}: the baseline needs {runs} runs but only {len(chosen)} are stored "
                    "up to it; run the set again or pin several --from"
                )
        resolved = [self._resolve(source) for source in chosen]
        all_results = [result for _, results in resolved for result in results]
        pin = BaselinePin(
            run_ids=[run_id for run_id, _ in resolved],
            pinned_at=now or datetime.now(UTC),
            sources=chosen,
            pass_rate=round(sum(r.passed for r in all_results) / len(all_results), 6),
            n=len(resolved[0][1]),
        )
        staging = self.root / f".baseline-{secrets.token_hex(4)}"
        staging.mkdir(parents=True)
        for index, (_, results) in enumerate(resolved):
            atomic_write_text(staging / f"{index:02d}.jsonl", results_text(results))
        atomic_write_text(staging / "pin.json", pin.model_dump_json(indent=2) + "\n")
        if self.baseline_dir.exists():
            retired = self.root / f".retired-{secrets.token_hex(4)}"
            self.baseline_dir.rename(retired)
            shutil.rmtree(retired)
        staging.rename(self.baseline_dir)
        return pin

    def baseline(self) -> tuple[BaselinePin, list[list[ItemResult]]] | None:
        pin_file = self.baseline_dir / "pin.json"
        if not pin_file.exists():
            return None
        pin = BaselinePin.model_validate_json(pin_file.read_text(encoding="utf-8"))
        runs = [load_results(path) for path in sorted(self.baseline_dir.glob("*.jsonl"))]
        return pin, runs

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
