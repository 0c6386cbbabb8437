"""`backout up|worker|api`, `backout config show` and `backout incidents ...`."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import typer

from config import Settings, SettingsError, load_settings
from worker.runner import run_up

config_app = typer.Typer(no_args_is_help=True, help="Inspect settings.")
incidents_app = typer.Typer(no_args_is_help=True, help="List and inspect incidents through the API.")

ConfigOption = typer.Option(None, "--config", help="YAML settings file (also BACKOUT_CONFIG)")
StateDirOption = typer.Option(None, "--state-dir", help="state directory (default ./.backout)")
AddressOption = typer.Option(
    None, "--temporal-address", help="existing Temporal host:port; no embedded server"
)


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config_file=config, **overrides)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _run(settings: Settings, with_worker: bool, with_api: bool) -> None:
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
    api_token: str | None = typer.Option(None, "--api-token", help="bearer token the API requires"),
) -> None:
    """Run everything: embedded Temporal (SQLite in the state dir) and its UI, the worker and the API."""
    settings = _settings(
        config, state_dir=state_dir, temporal_address=temporal_address, api_host=api_host, api_port=api_port,
        api_token=api_token,
    )  # fmt: skip
    if settings.temporal_address is None:
        # Embedded mode: the worker and API share this process.
        pass
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


def _api_call(method: str, path: str, body: Any | None = None) -> Any:
    settings = _settings(None)
    headers = {}
    if settings.api_token is not None:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    url = f"{settings.public_url.rstrip('/')}{path}"
    try:
        response = httpx.request(method, url, json=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        typer.echo(f"error: backout API at {settings.public_url} unreachable: {exc}", err=True)
        raise typer.Exit(1) from exc
    if response.status_code >= 400:
        typer.echo(f"error: {response.status_code}: {response.text}", err=True)
        raise typer.Exit(2 if response.status_code < 500 else 1)
    return response.json()


@incidents_app.command("list")
def incidents_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List incidents (newest first)."""
    data = _api_call("GET", "/v1/incidents")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for item in data["incidents"]:
        typer.echo(f"{item['id']}  {item['state']:<22} {item.get('service') or '-'}  {item['opened_at']}")


@incidents_app.command("show")
def incidents_show(incident_id: str) -> None:
    """Print one incident with its timeline (JSON)."""
    typer.echo(json.dumps(_api_call("GET", f"/v1/incidents/{incident_id}"), indent=2))


@incidents_app.command("confirm")
def incidents_confirm(
    incident_id: str,
    change_id: str,
    reject: bool = typer.Option(False, "--reject", help="this change was NOT the culprit"),
) -> None:
    """Label an incident's culprit (or rule a change out); the next `backout attribution train` learns from it."""
    answer = _api_call(
        "POST", f"/v1/incidents/{incident_id}/culprit", {"change_id": change_id, "confirmed": not reject}
    )
    verdict = "confirmed" if answer["confirmed"] else "rejected"
    typer.echo(f"{verdict} {answer['change_id']} as the culprit of {answer['incident_id']}")
