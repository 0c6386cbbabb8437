"""`backout incidents list|show|confirm|watch`: incidents through the backout API.

The API's address and token come from the settings (BACKOUT_PUBLIC_URL, BACKOUT_OPERATOR_TOKEN); an
API on HTTPS with a private CA or client certificates takes BACKOUT_CLIENT_CA_FILE,
BACKOUT_CLIENT_CERT_FILE and BACKOUT_CLIENT_KEY_FILE.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from incidents.models import IncidentView
    from worker.cli.watch import ApiClient

app = typer.Typer(no_args_is_help=True, help="List, inspect and watch incidents through the API.")

ConfigOption = typer.Option(None, "--config", help="YAML settings file (also BACKOUT_CONFIG)")
UrlOption = typer.Option(None, "--url", help="backout API base URL (default: settings public_url)")


def _api(config: Path | None, url: str | None) -> ApiClient:
    from config import SettingsError, load_settings
    from worker.cli.watch import ApiClient

    try:
        settings = load_settings(config_file=config)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    token = settings.operator_token.get_secret_value() if settings.operator_token is not None else None
    cert = None
    if settings.client_cert_file is not None and settings.client_key_file is not None:
        cert = (settings.client_cert_file, settings.client_key_file)
    try:
        return ApiClient(url or settings.public_url, token, ca_file=settings.client_ca_file, cert=cert)
    except (OSError, ssl.SSLError) as exc:
        typer.echo(
            f"error: client_ca_file / client_cert_file / client_key_file do not load as PEM: {exc}", err=True
        )
        raise typer.Exit(2) from exc


def _call(api: ApiClient, method: str, path: str, body: Any | None = None) -> Any:
    from worker.cli.watch import ApiError

    try:
        return api.call(method, path, body)
    except ApiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from exc


@app.command("list")
def incidents_list(
    as_json: bool = typer.Option(False, "--json"),
    url: str | None = UrlOption,
    config: Path | None = ConfigOption,
) -> None:
    """List incidents (newest first)."""
    data = _call(_api(config, url), "GET", "/v1/incidents")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for item in data["incidents"]:
        typer.echo(f"{item['id']}  {item['state']:<22} {item.get('service') or '-'}  {item['opened_at']}")


@app.command("show")
def incidents_show(
    incident_id: str,
    as_json: bool = typer.Option(False, "--json", help="the API's JSON, unchanged"),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="also every paging delivery, including those that sent nothing"
    ),
    url: str | None = UrlOption,
    config: Path | None = ConfigOption,
) -> None:
    """One incident: state, culprit, actions, timeline.

    The timeline is in time order; deliveries that sent nothing show only with --verbose."""
    data = _call(_api(config, url), "GET", f"/v1/incidents/{incident_id}")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    from incidents.models import IncidentView

    typer.echo(describe(IncidentView.model_validate(data), verbose))


def describe(view: IncidentView, verbose: bool = False) -> str:
    """An incident as text for a terminal: what it is, what was decided and done, and when."""
    where = f"{view.service or '-'}" + (f" ({view.namespace})" if view.namespace else "")
    lines = [
        f"incident {view.id}: {view.state}, {where}, from {view.source}, opened {view.opened_at:%H:%M:%S}"
    ]
    if view.attribution and view.attribution.ranking:
        top = view.attribution.ranking[0]
        lines.append(f"culprit: {top.change_id} p={top.probability:.2f}")
    for record in view.actions:
        lines.append(
            f"action: {record.action} [{record.mode}] {record.outcome} {record.target or record.message}"
        )
    if view.summary:
        lines += ["", view.summary, ""]
    lines.append("timeline (UTC):")
    lines += [
        f"  {entry.at:%H:%M:%S}  {entry.kind:<8} {entry.message}"
        for entry in view.timeline_for_people(verbose=verbose)
    ]
    return "\n".join(lines)


@app.command("confirm")
def incidents_confirm(
    incident_id: str,
    change_id: str,
    reject: bool = typer.Option(False, "--reject", help="this change was NOT the culprit"),
    url: str | None = UrlOption,
    config: Path | None = ConfigOption,
) -> None:
    """Label an incident's culprit, or rule a change out.

    The next `backout attribution train` learns from the label."""
    answer = _call(
        _api(config, url),
        "POST",
        f"/v1/incidents/{incident_id}/culprit",
        {"change_id": change_id, "confirmed": not reject},
    )
    verdict = "confirmed" if answer["confirmed"] else "rejected"
    typer.echo(f"{verdict} {answer['change_id']} as the culprit of {answer['incident_id']}")


@app.command("watch")
def incidents_watch(
    interval: float = typer.Option(2.0, "--interval", min=0.2, help="seconds between refreshes"),
    finished: int = typer.Option(5, "--finished", min=0, help="also show the last N finished incidents"),
    once: bool = typer.Option(False, "--once", help="print one frame and exit (scripts, logs)"),
    url: str | None = UrlOption,
    config: Path | None = ConfigOption,
) -> None:
    """Open incidents and their current step, refreshed in place.

    For the person on call: each open incident's step, how long it has been there, the top
    culprit and the latest timeline line (or who may approve, while an approval waits), and the
    last few finished incidents. Ctrl-C to leave; --once prints one frame."""
    from rich.console import Console

    from worker.cli.watch import watch

    api = _api(config, url)
    try:
        watch(api, Console(), interval, finished, once)
    except KeyboardInterrupt:
        pass
    finally:
        api.close()
