"""`backout runbook` commands: lint, simulate, test, schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # runbooks, bundles and the model load when a command runs, not for --help
    from incidents.bundle import AttributionOutput
    from runbooks.models import Runbook

app = typer.Typer(no_args_is_help=True, help="Lint, simulate and test YAML runbooks.")

DEFAULT_SCENARIOS = Path("tests/scenarios/runbooks")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.command()
def lint(
    paths: list[Path] = typer.Argument(None, help="runbook files or directories (default: shipped library)"),
) -> None:
    """Check runbooks; print `file:line:column: message` per problem, exit 1 if any."""
    from runbooks.lint import discover, lint_paths
    from runbooks.loader import LIBRARY_DIR

    chosen = paths or [LIBRARY_DIR]
    for path in chosen:
        if not path.exists():
            raise _fail(f"{path}: no such file or directory")
    files = discover(chosen)
    if not files:
        raise _fail(f"no runbook files (*.yaml, *.yml) under {', '.join(map(str, chosen))}")
    results = lint_paths(chosen)
    problems = [problem for result in results for problem in result.problems]
    for problem in problems:
        typer.echo(str(problem))
    if problems:
        bad = sum(1 for result in results if result.problems)
        typer.echo(f"{len(problems)} problem(s) in {bad} of {len(results)} file(s)", err=True)
        raise typer.Exit(1)
    nodes = sum(len(result.runbook.nodes) for result in results if result.runbook is not None)
    typer.echo(f"ok: {len(results)} runbook(s), {nodes} node(s), no problems")


def _load(paths: list[Path]) -> list[Runbook]:
    from runbooks.loader import RunbookLoadError, load_runbooks

    try:
        return load_runbooks(paths)
    except RunbookLoadError as exc:
        raise _fail(f"runbooks failed lint:\n{exc}") from None


def _pick_runbook(spec: str, library: list[Path]) -> Runbook:
    path = Path(spec)
    if path.is_file():
        return _load([path])[0]
    named = [runbook for runbook in _load(library) if runbook.name == spec]
    if not named:
        raise _fail(
            f"{spec}: neither a runbook file nor the name of a runbook in {', '.join(map(str, library))}"
        )
    return named[0]


def _configured_model() -> Path | None:
    """The attribution model the settings name (BACKOUT_ATTRIBUTION_MODEL), if they load."""
    from config import SettingsError, load_settings

    try:
        return load_settings().attribution_model
    except SettingsError:
        return None


@app.command("simulate")
def simulate_command(
    runbook: str = typer.Argument(..., help="runbook file, or the name of a runbook in --runbooks"),
    bundle: Path = typer.Option(..., "--bundle", help="incident bundle (spec v1) JSON file"),
    attribution: Path | None = typer.Option(
        None, "--attribution", help="attribution output JSON; default: run the attribution model if available"
    ),
    context: Path | None = typer.Option(
        None,
        "--context",
        help="JSON object of DecisionContext fields to override (eval, recent_rollbacks, now)",
    ),
    runbooks_dir: list[Path] = typer.Option(None, "--runbooks", help="where to look up a runbook by name"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Walk a runbook for a recorded incident: path, condition values, actions. Acts on nothing."""
    from incidents.bundle import BundleError, load_bundle
    from runbooks.loader import LIBRARY_DIR
    from runbooks.simulate import (
        SimulationError,
        attribute_with_available_model,
        load_attribution_file,
        render_text,
        simulate,
    )

    chosen = _pick_runbook(runbook, runbooks_dir or [LIBRARY_DIR])
    try:
        incident = load_bundle(bundle)
        ranking: AttributionOutput | None
        if attribution is not None:
            ranking, source = load_attribution_file(attribution), f"file {attribution}"
        else:
            ranking, source = attribute_with_available_model(incident, _configured_model())
        overrides = None
        if context is not None:
            overrides = json.loads(context.read_text(encoding="utf-8"))
            if not isinstance(overrides, dict):
                raise SimulationError(f"{context}: must hold a JSON object")
        result = simulate(chosen, incident, ranking, source, overrides)
    except (BundleError, SimulationError) as exc:
        raise _fail(str(exc)) from None
    except FileNotFoundError as exc:
        raise _fail(f"{exc.filename}: no such file") from None
    except json.JSONDecodeError as exc:
        raise _fail(f"{context}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        typer.echo(render_text(result))


@app.command("test")
def test_command(
    scenarios: Path = typer.Option(DEFAULT_SCENARIOS, "--scenarios", help="folder of recorded incidents"),
    runbooks_dir: list[Path] = typer.Option(None, "--runbooks", help="runbook files or directories"),
    record: bool = typer.Option(False, "--record", help="write decision.json from current decisions"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Replay every recorded incident through every matching runbook; report branch coverage."""
    from incidents.scenarios import ScenarioError
    from runbooks.loader import LIBRARY_DIR
    from runbooks.scenarios import record_scenario, run_all, scenario_folders
    from runbooks.simulate import SimulationError

    if not scenarios.is_dir():
        raise _fail(f"{scenarios}: no such directory")
    runbooks = _load(runbooks_dir or [LIBRARY_DIR])
    if record:
        for folder in scenario_folders(scenarios):
            try:
                expectation = record_scenario(folder, runbooks)
            except (ScenarioError, SimulationError) as exc:
                typer.echo(f"{folder.name}: skipped: {exc}", err=True)
                continue
            typer.echo(f"{folder.name}: recorded ({expectation.selected or 'no runbook'})")
    report = run_all(scenarios, runbooks)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        for outcome in report.scenarios:
            status = "skip" if outcome.skipped else "ok  " if outcome.ok else "FAIL"
            typer.echo(f"{status} {outcome.scenario}: {outcome.selected or 'no runbook'}")
            for problem in outcome.problems:
                typer.echo(f"       {problem}")
        typer.echo("branch coverage:")
        for item in report.coverage:
            missing = f" (missing: {', '.join(item.missing)})" if item.missing else ""
            typer.echo(f"  {item.runbook}: {item.covered}/{item.total} = {item.percent:.0f}%{missing}")
        checked = [outcome for outcome in report.scenarios if not outcome.skipped]
        passed = sum(1 for outcome in checked if outcome.ok)
        skipped = len(report.scenarios) - len(checked)
        typer.echo(
            f"{passed}/{len(checked)} scenario(s) as expected"
            + (f", {skipped} without decision.json" if skipped else "")
        )
    if not report.scenarios:
        raise _fail(f"no scenarios (*/bundle.json) under {scenarios}")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the JSON Schema of a runbook file (for editor completion)."""
    from runbooks.models import Runbook

    document = Runbook.model_json_schema(by_alias=True)
    document["properties"].pop("source", None)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "backout runbook"
    typer.echo(json.dumps(document, indent=2))
