"""`backout attribute` and `backout attribution train|bench`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from attribution.defaults import DEFAULT_NUISANCE_PER_FAMILY, DEFAULT_SYNTHETIC

if TYPE_CHECKING:  # the model, settings and rich load when a command runs
    from attribution.model import AttributionModel
    from config import Settings

attribution_app = typer.Typer(no_args_is_help=True, help="Train and benchmark the culprit-change model.")

ConfigOption = typer.Option(None, "--config", help="YAML settings file (also BACKOUT_CONFIG)")
ModelOption = typer.Option(
    None, "--model", help="model artifact (default: settings.attribution_model, else packaged)"
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _settings(config: Path | None) -> Settings:
    from config import SettingsError, load_settings

    try:
        return load_settings(config_file=config)
    except SettingsError as exc:
        raise _fail(str(exc)) from exc


def _model(config: Path | None, explicit: Path | None) -> AttributionModel:
    from attribution.model import ModelError, load_model

    path = explicit or _settings(config).attribution_model
    try:
        return load_model(path)
    except ModelError as exc:
        raise _fail(str(exc)) from exc


def attribute(
    input_file: Path = typer.Option(..., "--input", "-i", help="incident bundle (spec v1) as JSON"),
    as_json: bool = typer.Option(False, "--json", help="print the spec's JSON output"),
    model_path: Path | None = ModelOption,
    config: Path | None = ConfigOption,
) -> None:
    """Rank the bundle's changes by the probability that each caused the incident."""
    from rich.console import Console
    from rich.table import Table

    from attribution.case import case_from_bundle
    from incidents.bundle import BundleError, load_bundle

    try:
        bundle = load_bundle(input_file)
    except BundleError as exc:
        raise _fail(str(exc)) from exc
    model = _model(config, model_path)
    output = model.attribute(bundle)
    if as_json:
        typer.echo(output.model_dump_json(indent=2))
        return
    changes = {change.id: change for change in case_from_bundle(bundle).changes}
    table = Table(
        title=f"Incident {output.incident_id}: culprit ranking ({output.model.name} {output.model.version})"
    )
    for column in ("#", "change", "service", "kind", "probability", "evidence"):
        table.add_column(column, overflow="fold")
    for rank, item in enumerate(output.ranking, start=1):
        change = changes[item.change_id]
        table.add_row(
            str(rank),
            item.change_id,
            change.service,
            change.kind,
            f"{item.probability:.2f}",
            "\n".join(item.reasons),
        )
    if not output.ranking:
        typer.echo(f"Incident {output.incident_id}: no candidate changes in the bundle")
        return
    Console().print(table)


@attribution_app.command("train")
def train_command(
    out: Path | None = typer.Option(
        None, "--out", help="where to write the artifact (default: settings, else packaged)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the training report as JSON"),
    seed: int = typer.Option(7, "--seed", help="random seed (fixed: the same seed gives the same model)"),
    synthetic: int = typer.Option(
        DEFAULT_SYNTHETIC, "--synthetic", min=100, help="incidents from backout's own generator"
    ),
    nuisance: int = typer.Option(
        DEFAULT_NUISANCE_PER_FAMILY,
        "--nuisance-per-family",
        min=0,
        help="incidents per nuisance development family (0: none; held-out families are never used)",
    ),
    feedback: Path | None = typer.Option(
        None,
        "--feedback",
        help="operator labels (default: the shared store's with database_url, else settings.feedback_file)",
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Train the model from generated incidents, the nuisance development families and operator feedback."""
    from attribution.feedback import FeedbackError
    from attribution.training import TrainingConfig, packaged_model_path, train

    settings = _settings(config)
    destination = out or settings.attribution_model or packaged_model_path()
    feedback_file = feedback or settings.feedback_file
    if feedback is not None and not feedback.exists():
        raise _fail(f"--feedback {feedback}: no such file")
    if feedback is None and settings.database_url is not None:
        feedback_file = _labels_from_store(settings)
    try:
        model, report = train(
            TrainingConfig(
                seed=seed, synthetic=synthetic, nuisance_per_family=nuisance, feedback_file=feedback_file
            )
        )
    except FeedbackError as exc:
        raise _fail(str(exc)) from exc
    try:
        size = model.save(destination)
    except OSError as exc:
        raise _fail(f"--out {destination}: cannot write ({exc.strerror})") from exc
    result: dict[str, Any] = {**report.model_dump(), "artifact": str(destination), "artifact_bytes": size}
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(
        f"trained {report.model_version} on {report.incidents} incidents "
        f"({report.synthetic_incidents} generated, {report.nuisance_incidents} nuisance, "
        f"{report.feedback_incidents} feedback) in {report.total_seconds:.1f} s; wrote {destination} ({size} bytes)"
    )
    for note in report.notes:
        typer.echo(f"note: {note}")


@attribution_app.command("bench")
def bench_command(
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    sets: str = typer.Option(
        "petshop-validation,petshop-test,nuisance-development,nuisance-held-out,generator",
        "--sets",
        help="comma-separated data sets",
    ),
    variants: int = typer.Option(5, "--variants", min=1, help="distractor draws per PetShop issue"),
    per_family: int = typer.Option(40, "--per-family", min=1, help="incidents per nuisance family"),
    generated: int = typer.Option(300, "--generated", min=1, help="incidents from backout's own generator"),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=10, help="bootstrap resamples for the intervals"),
    png: Path = typer.Option(
        Path("attribution-reliability.png"), "--png", help="reliability diagram to write"
    ),
    latency: bool = typer.Option(True, "--latency/--no-latency", help="measure latency per bundle"),
    training_incidents: int = typer.Option(
        0,
        "--training-incidents",
        min=0,
        help="generated incidents for a training-time measurement (0 skips it)",
    ),
    model_path: Path | None = ModelOption,
    config: Path | None = ConfigOption,
) -> None:
    """HR@1/3, MRR, ECE, Brier with bootstrap intervals per data set, beside the baselines; abstention; auto-rollback."""
    from rich.console import Console
    from rich.table import Table

    from attribution.bench import run_bench
    from attribution.petshop import ATTRIBUTION

    model = _model(config, model_path)
    chosen = tuple(name.strip() for name in sets.split(",") if name.strip())
    try:
        report = run_bench(
            model,
            chosen,
            variants,
            per_family,
            generated,
            bootstrap,
            png,
            latency,
            training_incidents or None,
        )
    except ValueError as exc:
        raise _fail(f"--sets: {exc}") from exc
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    console = Console()
    for name, item in report.sets.items():
        table = Table(title=f"{name}: {item.incidents} incidents ({item.without_culprit} without a culprit)")
        for column in ("ranker", "HR@1", "HR@3", "MRR", "ECE", "Brier", "top p, no culprit (p95)"):
            table.add_column(column)
        for ranker, scores in item.rankers.items():
            top = item.no_culprit_top_probability[ranker].p95
            table.add_row(
                ranker, _interval(scores.hr_at_1), _interval(scores.hr_at_3), _interval(scores.mrr),
                _interval(scores.ece), _interval(scores.brier), "-" if top is None else f"{top:.2f}",
            )  # fmt: skip
        console.print(table)
        rollback = item.auto_rollback
        precision = "-" if rollback.precision is None else _interval(rollback.precision)
        console.print(
            f"auto-rollback at `{rollback.rule}`: coverage {_interval(rollback.coverage)}, precision {precision}"
        )
        if name.startswith("petshop"):
            console.print(f"[dim]{ATTRIBUTION}[/dim]")
    if report.latency:
        latency_report = report.latency
        console.print(
            f"latency per bundle ({latency_report.changes} changes, {latency_report.series} series): "
            f"p50 {latency_report.p50_ms} ms, p99 {latency_report.p99_ms} ms "
            f"({latency_report.ratio_p50}x the parse floor)"
        )
    if report.reliability_png:
        console.print(f"reliability diagram: {report.reliability_png}")
    if report.training:
        console.print(
            f"training on {report.training['incidents']} incidents: {report.training['total_seconds']} s"
        )
    console.print(f"machine: {report.machine}")


@attribution_app.command("validate")
def validate_command(
    cache: Path | None = typer.Option(
        None,
        "--cache",
        help="pickle of the generated cases, written on first use (reused while the generators are unchanged)",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="write the report, with every incident's outcome, as JSON"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the figures as JSON (without the outcomes)"),
) -> None:
    """Validation only: leave-one-development-family-out fits, fresh seed-404 incidents, PetShop validation."""
    from attribution.validate import line as figures
    from attribution.validate import load_data, run

    report = run(load_data(cache), log=not as_json)
    if out is not None:
        out.write_text(report.model_dump_json(), encoding="utf-8")
    if as_json:
        typer.echo(report.model_dump_json(exclude={"outcomes"}, indent=2))
        return
    typer.echo(figures(report))
    typer.echo(f"LOFO HR@1 per family: {report.lofo.families}")
    typer.echo(f"seed-404 HR@1 per family: {report.fresh.families}")


def _interval(value: Any) -> str:
    return f"{value.value:.3f} [{value.low:.3f}, {value.high:.3f}]"


def register(app: typer.Typer) -> None:
    """Add this domain's commands to the root app."""
    app.command("attribute")(attribute)
    app.add_typer(attribution_app, name="attribution")


def _labels_from_store(settings: Settings) -> Path:
    """The culprit labels every API replica recorded in the shared store (database_url), written to
    a feedback file in the state directory for training."""
    from activities.changes_store import ChangeStore, StoreUnavailable

    store = ChangeStore.of(settings)
    try:
        labels = store.labels()
    except StoreUnavailable as exc:
        raise _fail(str(exc)) from exc
    finally:
        store.close()
    exported = settings.state_dir / "feedback-from-store.jsonl"
    exported.parent.mkdir(parents=True, exist_ok=True)
    exported.write_text("".join(label + "\n" for label in labels), encoding="utf-8")
    return exported
