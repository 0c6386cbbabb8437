"""The `backout` command. Each domain owns one sub-module with its commands.

Sub-modules load only when their command runs, and each imports its domain inside the command
that needs it, so `backout --help` and `backout <group> --help` never pay for numpy, the
Kubernetes client, Temporal or the evals (`backout bench cli` measures it; tests/cli checks the
imports). Help is plain text: rendering it with rich would cost more than the rest of the start.
The development harness
(`backout demo`, `backout cluster ...`, `backout bench ...`) comes from the separate
`backout-devstack` distribution through the `backout.commands` entry-point group; without
it, those commands say how to get it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

PLUGIN_GROUP = "backout.commands"
HARNESS_HINT = "pip install -e ./devstack (or make dev)"


@dataclass(frozen=True)
class LazyCommand:
    """`target` is "module:attribute", a typer.Typer sub-app or a command function."""

    target: str
    help: str


COMMANDS: dict[str, LazyCommand] = {
    "up": LazyCommand(
        "worker.cli.processes:up", "Run everything: embedded Temporal, the worker and the API."
    ),
    "worker": LazyCommand("worker.cli.processes:worker", "Run only the worker against a Temporal cluster."),
    "api": LazyCommand("worker.cli.processes:api", "Run only the HTTP API against a Temporal cluster."),
    "config": LazyCommand("worker.cli.processes:config_app", "Inspect settings."),
    "incidents": LazyCommand(
        "worker.cli.incidents:app", "List, inspect and watch incidents through the API."
    ),
    "changes": LazyCommand(
        "worker.cli.kube:changes_command", "List recent Deployment, ConfigMap and Secret changes."
    ),
    "rollback": LazyCommand(
        "worker.cli.kube:rollback_command", "Roll back a Deployment or restore a ConfigMap/Secret version."
    ),
    "attribute": LazyCommand(
        "worker.cli.attribution:attribute", "Rank an incident bundle's changes by culprit probability."
    ),
    "attribution": LazyCommand(
        "worker.cli.attribution:attribution_app", "Train and benchmark the culprit-change model."
    ),
    "eval": LazyCommand("worker.cli.evals:app", "Golden-set evaluations and regression statistics."),
    "runbook": LazyCommand("worker.cli.runbooks:app", "Lint, simulate and test YAML runbooks."),
    "owners": LazyCommand("worker.cli.paging:app", "Service ownership: who is paged and who may approve."),
}
# Commands of the development harness, with the help shown whether or not it is installed.
HARNESS_COMMANDS: dict[str, str] = {
    "demo": "A whole incident end to end on local parts (development harness).",
    "cluster": "A local Kubernetes control plane on loopback (development harness).",
    "bench": "Benchmarks that print JSON figures (development harness).",
    "temporal": "Temporal server on PostgreSQL on loopback, without containers (development harness).",
}


def _plugins() -> dict[str, str]:
    """Command name -> "module:attribute" for every installed `backout.commands` entry point.

    Read only when a harness command runs: listing them needs no package metadata."""
    from importlib.metadata import entry_points

    return {point.name: point.value for point in entry_points(group=PLUGIN_GROUP)}


def _harness(name: str) -> Any:
    target = _plugins().get(name)
    if target is None:
        return _missing_harness(name)
    return _as_command(name, _load(name, target))


def _missing_harness(name: str) -> Any:
    """`backout demo` and friends without the harness installed: say how to get it, exit 2."""

    def explain() -> None:
        typer.echo(f"error: backout {name} needs the development harness: {HARNESS_HINT}", err=True)
        raise typer.Exit(2)

    parent = typer.Typer(add_completion=False, rich_markup_mode=None)
    parent.callback()(_root)
    parent.command(
        name,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(explain)
    return typer.main.get_command(parent).commands[name]  # type: ignore[attr-defined]


def _load(name: str, target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(import_module(module), attribute)


def _as_command(name: str, loaded: Any) -> Any:
    """The click command for a sub-app or a command function, as if registered on the root app.

    The root's plain help reaches every sub-command through the parent."""
    parent = typer.Typer(add_completion=False, rich_markup_mode=None)
    parent.callback()(_root)
    if isinstance(loaded, typer.Typer):
        parent.add_typer(loaded, name=name)
    else:
        parent.command(name)(loaded)
    return typer.main.get_command(parent).commands[name]  # type: ignore[attr-defined]


def _root() -> None:
    """Autonomous incident responder for AI services on Kubernetes."""


class _Deferred(TyperCommand):
    """Stands in for a command in help listings; loads the real one when it is invoked."""

    def __init__(self, name: str, help: str, load: Any) -> None:
        super().__init__(name=name, callback=None, help=help, short_help=help, add_help_option=False)
        self._load = load

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        return self._load().make_context(info_name, args, parent=parent, **extra)


class _HelpFlag(TyperOption):
    """The root's --help. typer coerces an absent flag (None) through a pydantic TypeAdapter, which
    imports pydantic: a third of `backout <group> --help`. Absent means False."""

    def process_value(self, ctx: Any, value: Any) -> Any:
        return super().process_value(ctx, False if value is None else value)


class LazyGroup(TyperGroup):
    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if type(option) is TyperOption:
            option.__class__ = _HelpFlag
        return option

    def _entries(self) -> dict[str, tuple[str, Any]]:
        entries: dict[str, tuple[str, Any]] = {
            name: (entry.help, lambda n=name, t=entry.target: _as_command(n, _load(n, t)))
            for name, entry in COMMANDS.items()
        }
        for name, help_text in HARNESS_COMMANDS.items():
            entries[name] = (help_text, lambda n=name: _harness(n))
        return entries

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *self._entries()]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            return found
        entry = self._entries().get(cmd_name)
        if entry is None:
            return None
        return _Deferred(cmd_name, entry[0], entry[1])


app = typer.Typer(
    name="backout",
    cls=LazyGroup,
    help="Autonomous incident responder for AI services on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
app.callback()(_root)


def main() -> None:
    app()
