"""Execute one golden-set run end to end: load the manifest, call the service and score each item
(evals/runner.py), store the run (and optionally copy it out)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from evals.golden import golden_path, load_golden_set, load_manifest
from evals.judge import Judge
from evals.models import EvalManifest, ItemResult, RunSummary
from evals.runner import ProgressCallback, run_items, summarize
from evals.store import EvalStore, atomic_write_text, new_run_id, results_text


async def execute_run(
    manifest_path: str | Path,
    state_dir: Path,
    endpoint: str | None = None,
    run_id: str | None = None,
    out: Path | None = None,
    progress: ProgressCallback | None = None,
    default_judge: Judge | None = None,
) -> tuple[EvalManifest, RunSummary, list[ItemResult]]:
    """Nothing is written unless every item was attempted; files appear complete or not at all."""
    manifest = load_manifest(manifest_path)
    items = load_golden_set(golden_path(manifest_path, manifest))
    started = datetime.now(UTC)
    target = endpoint or manifest.endpoint
    results = await run_items(manifest, items, target, progress=progress, default_judge=default_judge)
    finished = datetime.now(UTC)
    summary = summarize(run_id or new_run_id(started), manifest, target, started, finished, results)
    path = EvalStore(state_dir, manifest.name).save_run(summary, results)
    summary = summary.model_copy(update={"results_path": str(path)})
    if out is not None:
        atomic_write_text(out, results_text(results))
        summary = summary.model_copy(update={"results_path": str(out)})
    return manifest, summary, results
