"""`backout eval` commands: run a golden set, compare runs, pin a baseline, schedule runs, show history."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer

if TYPE_CHECKING:  # the evals (scipy among them) load when a command runs, not for --help
    from config import Settings
    from evals.models import RunSummary
    from evals.runner import ProgressCallback
    from evals.stats import Comparison

app = typer.Typer(no_args_is_help=True, help="Golden-set evaluations and regression statistics.")

CONFIG_OPTION = typer.Option(None, "--config", help="YAML settings file")


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _settings(config: Path | None) -> Settings:
    from config import SettingsError, load_settings

    try:
        return load_settings(config_file=config)
    except SettingsError as exc:
        raise _fail(str(exc), 2) from exc


@contextmanager
def _progress(enabled: bool, label: str) -> Iterator[ProgressCallback | None]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def _print_summary(summary: RunSummary) -> None:
    typer.echo(
        f"{summary.manifest} run {summary.run_id}: {summary.passed}/{summary.n} passed "
        f"({summary.pass_rate:.1%}), mean score {summary.mean_score:.3f}, errors {summary.errors}"
    )
    latency = f"latency p50 {summary.latency_p50_ms} ms, p95 {summary.latency_p95_ms} ms"
    if summary.ttft_p50_ms is not None:
        latency += f", TTFT p50 {summary.ttft_p50_ms} ms"
    typer.echo(latency)
    if summary.tags:
        typer.echo("by tag: " + ", ".join(f"{tag} {rate:.0%}" for tag, rate in summary.tags.items()))
    typer.echo(f"results: {summary.results_path}")


@app.command("run")
def run_command(
    manifest: Path = typer.Argument(..., help="golden-set manifest (YAML)"),
    endpoint: str | None = typer.Option(None, "--endpoint", help="base URL of the OpenAI-compatible service"),
    out: Path | None = typer.Option(None, "--out", help="also write the per-item results (JSONL) here"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Run a golden set; one JSON line per item goes to the results file, a summary to stdout."""
    from evals.execute import execute_run
    from evals.golden import EvalInputError
    from evals.judge import deployment_judge
    from evals.runner import RunFailed, ServiceUnreachable

    settings = _settings(config)
    show_progress = not as_json and sys.stderr.isatty()
    try:
        with _progress(show_progress, "golden set") as progress:
            _, summary, _ = asyncio.run(
                execute_run(
                    manifest,
                    settings.state_dir,
                    endpoint=endpoint,
                    out=out,
                    progress=progress,
                    default_judge=deployment_judge(settings),
                )
            )
    except EvalInputError as exc:
        raise _fail(str(exc), 2) from exc
    except ServiceUnreachable as exc:
        raise _fail(f"service unreachable, nothing written: {exc}", 1) from exc
    except RunFailed as exc:
        raise _fail(f"{exc}; nothing written", 1) from exc
    if as_json:
        typer.echo(summary.model_dump_json())
    else:
        _print_summary(summary)


def _print_comparison(comparison: Comparison) -> None:
    verdict = "REGRESSION" if comparison.regression else "no regression"
    low, high = comparison.ci
    typer.echo(
        f"{verdict}: {comparison.metric} {comparison.baseline:.3f} -> {comparison.candidate:.3f} "
        f"(delta {comparison.delta:+.3f}, 95% CI [{low:+.3f}, {high:+.3f}]), p = {comparison.p_value:.3g} "
        f"at alpha {comparison.alpha:.3g}, n = {comparison.n}, {comparison.test}"
    )
    for tag, result in comparison.tags.items():
        flag = "REGRESSION" if result.regression else "ok"
        typer.echo(
            f"  tag {tag}: {flag} {result.baseline:.3f} -> {result.candidate:.3f} "
            f"(delta {result.delta:+.3f}), p = {result.p_value:.3g}, n = {result.n}"
        )


@app.command("compare")
def compare_command(
    baseline: Path = typer.Argument(..., help="baseline results (JSONL)"),
    candidate: Path = typer.Argument(..., help="candidate results (JSONL)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    metric: str = typer.Option("pass_rate", "--metric", help="pass_rate (exact McNemar) or score (Wilcoxon)"),
    alpha: float = typer.Option(0.05, "--alpha", help="one-sided significance level"),
    min_effect: float = typer.Option(0.02, "--min-effect", help="smallest drop that counts as a regression"),
    critical_tag: list[str] = typer.Option([], "--critical-tag", help="also test this tag (repeatable)"),
    manifest: Path | None = typer.Option(
        None, "--manifest", help="take metric, alpha, min effect, tags from it"
    ),
) -> None:
    """Paired comparison by item id. Exit 0 = no regression, 1 = regression, 2 = bad input."""
    from evals.golden import EvalInputError, load_manifest, load_results
    from evals.stats import ComparisonError, ComparisonSettings, compare, comparison_json

    try:
        if metric not in ("pass_rate", "score"):
            raise EvalInputError(f"--metric {metric!r}: must be pass_rate or score")
        chosen_metric: Literal["pass_rate", "score"] = "score" if metric == "score" else "pass_rate"
        settings = ComparisonSettings(
            metric=chosen_metric, alpha=alpha, min_effect=min_effect, critical_tags=critical_tag
        )
        if manifest is not None:
            loaded = load_manifest(manifest)
            settings = ComparisonSettings(
                metric=loaded.metric,
                alpha=loaded.alpha,
                min_effect=loaded.min_effect,
                critical_tags=loaded.critical_tags,
            )
        comparison = compare([load_results(baseline)], [load_results(candidate)], settings)
    except (EvalInputError, ComparisonError) as exc:
        raise _fail(str(exc), 2) from exc
    except ValueError as exc:  # pydantic validation of the numeric options
        raise _fail(f"invalid option: {exc}", 2) from exc
    if as_json:
        typer.echo(json.dumps(comparison_json(comparison)))
    else:
        _print_comparison(comparison)
    raise typer.Exit(1 if comparison.regression else 0)


@app.command("baseline")
def baseline_command(
    manifest: Path = typer.Argument(..., help="golden-set manifest (YAML)"),
    sources: list[str] = typer.Option(..., "--from", help="stored run id or results file (repeatable)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Pin the baseline. One stored run id pins it and the runs before it, up to `baseline_runs`."""
    from evals.golden import EvalInputError, load_manifest
    from evals.store import EvalStore

    settings = _settings(config)
    try:
        loaded = load_manifest(manifest)
        store = EvalStore(settings.state_dir, loaded.name)
        pin = store.pin_baseline(sources, runs=loaded.baseline_runs)
    except EvalInputError as exc:
        raise _fail(str(exc), 2) from exc
    if as_json:
        typer.echo(pin.model_dump_json())
        return
    typer.echo(
        f"pinned baseline for {loaded.name}: runs {', '.join(pin.run_ids)} "
        f"(pass rate {pin.pass_rate:.1%}, {pin.n} items)"
    )


@app.command("schedule")
def schedule_command(
    manifest: Path = typer.Argument(..., help="golden-set manifest (YAML)"),
    every: str = typer.Option("15m", "--every", help="interval, e.g. 15m, 1h, 90s"),
    endpoint: str | None = typer.Option(None, "--endpoint", help="override the manifest endpoint"),
    trigger_now: bool = typer.Option(False, "--trigger-now", help="also start one run immediately"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Create or update (idempotently) the Temporal Schedule that runs EvalWorkflow."""
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    from evals.golden import EvalInputError, load_manifest
    from evals.schedule import ScheduleOutcome, ensure_schedule, parse_every

    settings = _settings(config)
    try:
        interval = parse_every(every)
        loaded = load_manifest(manifest)
    except (ValueError, EvalInputError) as exc:
        raise _fail(str(exc), 2) from exc

    async def apply() -> ScheduleOutcome:
        client = await Client.connect(
            settings.effective_temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=pydantic_data_converter,
        )
        return await ensure_schedule(
            client,
            manifest,
            loaded,
            interval,
            settings.task_queue,
            settings.state_dir,
            endpoint=endpoint,
            trigger_now=trigger_now,
        )

    try:
        outcome = asyncio.run(apply())
    except RuntimeError as exc:
        raise _fail(f"cannot reach Temporal at {settings.effective_temporal_address}: {exc}", 1) from exc
    if as_json:
        typer.echo(json.dumps(outcome.model_dump()))
        return
    typer.echo(
        f"schedule {outcome.schedule_id} {outcome.action}: EvalWorkflow every {every} "
        f"on task queue {settings.task_queue}"
    )


@app.command("history")
def history_command(
    manifest: Path = typer.Argument(..., help="golden-set manifest (YAML)"),
    limit: int = typer.Option(20, "--limit", help="newest N points"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """The eval_score series: pass rate per run, and the verdict of each look."""
    from evals.golden import EvalInputError, load_manifest
    from evals.store import EvalStore

    settings = _settings(config)
    try:
        loaded = load_manifest(manifest)
    except EvalInputError as exc:
        raise _fail(str(exc), 2) from exc
    points = EvalStore(settings.state_dir, loaded.name).history(limit=limit)
    if as_json:
        typer.echo(json.dumps([point.model_dump(mode="json") for point in points]))
        return
    for point in points:
        verdict = {None: "-", True: "REGRESSION", False: "ok"}[point.regression]
        typer.echo(f"{point.time:%Y-%m-%d %H:%M:%S}Z  {point.run_id}  {point.pass_rate:6.1%}  {verdict}")
