"""`backout demo`: a whole incident, end to end, on embedded defaults."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    state_dir: Path = typer.Option(
        Path(".backout/demo"), "--state-dir", help="where the demo keeps its state"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the final incident report as JSON on stdout"),
    out_dir: Path = typer.Option(
        Path("reports"), "--out", help="where the JSON and HTML reports are written"
    ),
    production_temporal: bool = typer.Option(
        False,
        "--production-temporal",
        help="run on temporal-server with PostgreSQL (`backout temporal up`) instead of the dev server",
    ),
    gitops: bool = typer.Option(
        False,
        "--gitops",
        help="the changes are Git commits Flux applies: backout suspends Flux, rolls back, reverts in Git "
        "(a pull request a local reviewer merges), resumes and verifies",
    ),
) -> None:
    """Start everything locally, deploy three changes (one bad), watch backout find, roll back and verify."""
    from devstack.demo.run import main  # heavy imports only when the demo runs

    code = main(state_dir, as_json, out_dir, production_temporal, gitops)
    raise typer.Exit(code)
