"""`backout up|worker|api` and `backout config show`.

The settings, Temporal, the API server and the worker load when a command runs, not for `--help`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from config import Settings

config_app = typer.Typer(no_args_is_help=True, help="Inspect settings.")

ConfigOption = typer.Option(None, "--config", help="YAML settings file (also BACKOUT_CONFIG)")
StateDirOption = typer.Option(None, "--state-dir", help="state directory (default ./.backout)")
AddressOption = typer.Option(
    None, "--temporal-address", help="existing Temporal host:port; no embedded server"
)


def _settings(config: Path | None, **overrides: Any) -> Settings:
    from config import SettingsError, load_settings

    try:
        return load_settings(config_file=config, **overrides)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _run(settings: Settings, with_worker: bool, with_api: bool) -> None:
    import asyncio
    import logging

    from config import SettingsError
    from worker.runner import run_up

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(run_up(settings, with_worker=with_worker, with_api=with_api))
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except (ConnectionError, RuntimeError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        pass


def up(
    config: Path | None = ConfigOption,
    state_dir: Path | None = StateDirOption,
    temporal_address: str | None = AddressOption,
    api_host: str | None = typer.Option(None, "--host", help="API listen address (default 127.0.0.1)"),
    api_port: int | None = typer.Option(None, "--port", help="API port (default 8080)"),
) -> None:
    """Run everything: embedded Temporal (SQLite in the state dir) and its UI, the worker and the API.

    The API's credentials come from the environment or the config file, one per role
    (BACKOUT_SENDER_TOKEN, BACKOUT_REPORTER_TOKEN, BACKOUT_OPERATOR_TOKEN; README "Security")."""
    settings = _settings(
        config, state_dir=state_dir, temporal_address=temporal_address, api_host=api_host, api_port=api_port
    )
    _run(settings, with_worker=True, with_api=True)


def worker(
    config: Path | None = ConfigOption,
    temporal_address: str | None = AddressOption,
    state_dir: Path | None = StateDirOption,
) -> None:
    """Run only the worker against a Temporal cluster (many workers may share one cluster)."""
    _run(
        _settings(config, temporal_address=temporal_address, state_dir=state_dir),
        with_worker=True,
        with_api=False,
    )


def api(
    config: Path | None = ConfigOption,
    temporal_address: str | None = AddressOption,
    state_dir: Path | None = StateDirOption,
    api_host: str | None = typer.Option(None, "--host"),
    api_port: int | None = typer.Option(None, "--port"),
) -> None:
    """Run only the HTTP API against a Temporal cluster."""
    settings = _settings(
        config, temporal_address=temporal_address, state_dir=state_dir, api_host=api_host, api_port=api_port
    )
    _run(settings, with_worker=False, with_api=True)


@config_app.command("show")
def config_show(config: Path | None = ConfigOption, as_json: bool = typer.Option(False, "--json")) -> None:
    """Print the effective settings (flags > BACKOUT_* environment > YAML file > defaults), secrets masked."""
    values = _settings(config).masked()
    if as_json:
        typer.echo(json.dumps(values, indent=2, default=str))
        return
    width = max(len(key) for key in values)
    for key, value in values.items():
        typer.echo(f"{key.ljust(width)}  {value}")
