"""`backout up|worker|api|config` and incident commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from worker.settings import SettingsError, load_settings

config_app = typer.Typer(no_args_is_help=True, help="Inspect settings.")


@config_app.command("show")
def config_show(
    config: Path | None = typer.Option(None, "--config", help="YAML settings file"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Print the effective settings (flags > BACKOUT_* environment > YAML file > defaults), secrets masked."""
    try:
        settings = load_settings(config_file=config)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    values = settings.masked()
    if as_json:
        typer.echo(json.dumps(values, indent=2, default=str))
        return
    width = max(len(key) for key in values)
    for key, value in values.items():
        typer.echo(f"{key.ljust(width)}  {value}")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
