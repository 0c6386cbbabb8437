"""`backout temporal up|down|status|env`: Temporal on PostgreSQL on loopback, without containers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from devstack.defaults import TEMPORAL_SQL_STATE_DIR

app = typer.Typer(
    no_args_is_help=True,
    help="Run a production Temporal server (temporal-server on PostgreSQL) on loopback.",
)

STATE_DIR_OPTION = typer.Option(TEMPORAL_SQL_STATE_DIR, "--state-dir", help="data, logs, pids and ports")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@app.command("up")
def up_command(
    state_dir: Path = STATE_DIR_OPTION,
    namespace: str = typer.Option("default", "--namespace", help="Temporal namespace to register"),
    history_shards: int = typer.Option(
        4, "--history-shards", min=1, help="fixed when the database is first set up"
    ),
    timeout: float = typer.Option(180.0, "--timeout", help="seconds to wait for a healthy server"),
) -> None:
    """Start PostgreSQL and temporal-server in the background (building the server once) and wait for them."""
    from devstack import gobuild
    from devstack.temporal_sql import TemporalSql, TemporalSqlError, client_env

    started = time.monotonic()
    server = TemporalSql(state_dir, namespace=namespace, history_shards=history_shards)
    try:
        state = server.start(timeout_s=timeout)
    except (TemporalSqlError, gobuild.GoBuildError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(
        f"temporal-server {state.server_version} on PostgreSQL at {state.address} "
        f"(namespace {state.namespace}) in {time.monotonic() - started:.1f}s"
    )
    from config.redact import redact_url

    for name, value in client_env(state).items():  # the password only through `backout temporal env`
        typer.echo(f"export {name}={redact_url(value)}")


@app.command("down")
def down_command(
    state_dir: Path = STATE_DIR_OPTION,
    purge: bool = typer.Option(False, "--purge", help="also delete the database"),
) -> None:
    """Stop the server and PostgreSQL (data is kept unless --purge)."""
    from devstack.temporal_sql import TemporalSql

    stopped = TemporalSql(state_dir).stop(purge=purge)
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing running")


@app.command("status")
def status_command(
    state_dir: Path = STATE_DIR_OPTION,
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Whether PostgreSQL and the server run and a Temporal client is served (exit 1 when not healthy)."""
    from devstack.temporal_sql import TemporalSql

    status = TemporalSql(state_dir).status()
    if as_json:
        typer.echo(json.dumps(status.model_dump(), indent=2))
    elif not status.up:
        typer.echo(f"not running (state dir {status.state_dir})")
    else:
        health = "healthy" if status.healthy else f"NOT healthy: {status.problem or 'a process is down'}"
        typer.echo(
            f"temporal-server {status.server_version} at {status.address} (namespace {status.namespace}): {health}"
        )
        typer.echo(f"  postgresql       {'running' if status.postgres_running else 'STOPPED'}")
        typer.echo(f"  temporal-server  {'running' if status.server_running else 'STOPPED'}")
    if not status.healthy:
        raise typer.Exit(1)


@app.command("env")
def env_command(
    state_dir: Path = STATE_DIR_OPTION,
    as_json: bool = typer.Option(False, "--json", help="the whole state (password masked)"),
) -> None:
    """Print the settings that point backout at this server: eval "$(backout temporal env)"."""
    from devstack.temporal_sql import TemporalSql, client_env, state_json

    state = TemporalSql(state_dir).read_state()
    if state is None:
        raise _fail(f"no server recorded in {Path(state_dir).absolute()}; run `backout temporal up` first")
    if as_json:
        typer.echo(state_json(state))
        return
    for name, value in client_env(state).items():
        typer.echo(f"export {name}={value}")
