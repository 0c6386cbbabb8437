"""`backout owners` commands.

`backout owners check` validates the ownership file and reports services without an owner.
The services checked are every entry of the file's `services:` list, plus those named with
`--services a,prod/b`, plus (with `--from-cluster`) every Deployment in the cluster, whose
`backout.dev/team` annotation counts as ownership when it names a team of the file.
Exit 0: all owned; 1: some service has no owner or the file references unknown teams;
2: bad input (missing or invalid file, bad --services).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # ownership (and the Kubernetes client) load when the command runs, not for --help
    from activities.paging.owners import ServiceRef

app = typer.Typer(no_args_is_help=True, help="Service ownership: who is paged and who may approve.")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@app.command("check")
def check(
    file: Path | None = typer.Option(
        None, "--file", "-f", help="ownership YAML (default: settings ownership_file)"
    ),
    services: str | None = typer.Option(
        None, "--services", help="more services to check: NAME or NS/NAME, comma separated"
    ),
    from_cluster: bool = typer.Option(
        False, "--from-cluster", help="also check every Deployment in the cluster"
    ),
    namespace: list[str] = typer.Option(
        [], "--namespace", "-n", help="with --from-cluster: only these namespaces"
    ),
    kubeconfig: Path | None = typer.Option(
        None, "--kubeconfig", help="with --from-cluster (default: settings, $KUBECONFIG)"
    ),
    config: Path | None = typer.Option(None, "--config", help="YAML settings file (also BACKOUT_CONFIG)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Validate the ownership file and report services with no owner (exit 1 when there are any)."""
    from activities.paging.owners import (
        OwnershipError,
        check_ownership,
        discover_workloads,
        load_ownership,
        parse_service_refs,
    )
    from config import SettingsError, load_settings

    try:
        settings = load_settings(config_file=config)
    except SettingsError as exc:
        raise _fail(str(exc)) from exc
    path = file or settings.ownership_file
    if path is None:
        raise _fail("no ownership file: pass --file or set BACKOUT_OWNERSHIP_FILE")
    try:
        ownership = load_ownership(path)
        extra: list[ServiceRef] = parse_service_refs(services) if services else []
    except (OwnershipError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    if from_cluster:
        try:
            extra.extend(
                discover_workloads(
                    kubeconfig or settings.kubeconfig, namespace or settings.allowed_namespaces
                )
            )
        except Exception as exc:  # the kubernetes client raises many types; all mean "cannot list"
            typer.echo(f"error: cannot list Deployments: {exc}", err=True)
            raise typer.Exit(1) from exc
    report = check_ownership(ownership, extra)
    if as_json:
        typer.echo(json.dumps(report.model_dump(), indent=2))
    else:
        for label in report.checked:
            owner = report.owned.get(label)
            typer.echo(
                f"{'ok  ' if owner else 'NONE'}  {label}" + (f" -> {owner}" if owner else "  (no owner)")
            )
        for problem in report.problems:
            typer.echo(f"problem: {problem}")
        for warning in report.warnings:
            typer.echo(f"warning: {warning}")
        typer.echo(
            f"{len(report.owned)} owned, {len(report.unowned)} without owner, {len(report.problems)} problem(s)"
        )
    if report.unowned or report.problems:
        raise typer.Exit(1)
