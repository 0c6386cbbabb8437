"""`backout bench` commands: load a running backout API like Alertmanager would and print JSON figures."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:  # the benches (pydantic, numpy, httpx, the stack) load when one runs, not for --help
    from pydantic import BaseModel

    from devstack.bench.benches import Target

app = typer.Typer(no_args_is_help=True, help="Benchmarks that print JSON figures.")

ResultT = TypeVar("ResultT", bound="BaseModel")

UrlOption = typer.Option("http://127.0.0.1:8080", "--url", help="base URL of a running backout API")
TokenOption = typer.Option(
    None, "--token", help="the API's sender token (default: BACKOUT_SENDER_TOKEN)", show_default=False
)
ConcurrencyOption = typer.Option(16, "--concurrency", help="notifications in flight at once")
SpawnOption = typer.Option(
    False, "--spawn", help="start a private `backout up` on free ports for the run (ignores --url/--token)"
)
ListWaitOption = typer.Option(60.0, "--list-wait-s", help="seconds to wait for all incidents to be listed")
JsonOption = typer.Option(False, "--json", help="print the result as JSON")
TemporalAddressOption = typer.Option(
    None,
    "--temporal-address",
    help="the Temporal server the API uses, for the bare-client floor (default: BACKOUT_TEMPORAL_ADDRESS; "
    "with --spawn, the spawned one)",
    show_default=False,
)
TemporalNamespaceOption = typer.Option(
    None, "--temporal-namespace", help="its namespace (default: BACKOUT_TEMPORAL_NAMESPACE, else default)"
)
FloorOption = typer.Option(
    True, "--floor/--no-floor", help="measure the bare signal-with-start floor in the same run"
)
OpenIncidentsOption = typer.Option(
    0, "--open-incidents", min=0, max=1000, help="incidents to open (and let settle) before measuring"
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@dataclass(frozen=True)
class LoadOptions:
    """What `bench ingest` and `bench storm` share: where to send, how hard, against which floor."""

    url: str
    token: str | None
    concurrency: int
    list_wait_s: float
    spawn: bool
    temporal_address: str | None
    temporal_namespace: str | None
    floor: bool
    open_incidents: int


@contextlib.contextmanager
def _target(options: LoadOptions) -> Iterator[Target]:
    from pydantic import ValidationError

    from devstack.bench.benches import Target
    from devstack.bench.stack import SpawnedStack
    from devstack.process import ProcessStartError

    shared = {
        "concurrency": options.concurrency,
        "list_wait_s": options.list_wait_s,
        "floor": options.floor,
        "open_incidents": options.open_incidents,
        "temporal_namespace": options.temporal_namespace
        or os.environ.get("BACKOUT_TEMPORAL_NAMESPACE")
        or "default",
    }
    try:
        if not options.spawn:
            yield Target(
                url=options.url,
                token=options.token or os.environ.get("BACKOUT_SENDER_TOKEN") or None,
                operator_token=os.environ.get("BACKOUT_OPERATOR_TOKEN") or None,
                temporal_address=options.temporal_address
                or os.environ.get("BACKOUT_TEMPORAL_ADDRESS")
                or None,
                **shared,
            )
            return
        with SpawnedStack() as stack:
            yield Target(
                url=stack.url,
                token=stack.token,
                operator_token=stack.operator_token,
                temporal_address=stack.temporal_address,
                **shared,
            )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise _fail(problems) from exc
    except ProcessStartError as exc:
        raise _fail(f"could not start backout up: {exc}") from exc


def _run(make: Callable[[], Coroutine[Any, Any, ResultT]], as_json: bool) -> None:
    from devstack.bench.runner import BenchError

    try:
        result = asyncio.run(make())
    except (BenchError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    data = result.model_dump(mode="json")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        width = max(len(key) for key in data)
        for key, value in data.items():
            typer.echo(f"{key.ljust(width)}  {value}")
    if not data.get("ok", True) or data.get("targets_met") is False:
        raise typer.Exit(1)


def _load_options(parameters: dict[str, Any]) -> LoadOptions:
    """The LoadOptions among a command's parameters (its locals())."""
    return LoadOptions(**{field.name: parameters[field.name] for field in dataclasses.fields(LoadOptions)})


def _run_load(
    options: LoadOptions, make: Callable[[Target], Coroutine[Any, Any, ResultT]], as_json: bool
) -> None:
    """Run one load bench (ingest, storm) against the target the options name."""
    with _target(options) as target:
        _run(lambda: make(target), as_json)


@app.command("ingest")
def ingest(
    url: str = UrlOption,
    token: str | None = TokenOption,
    notifications: int = typer.Option(2000, "--notifications", min=2, help="webhook notifications to send"),
    groups: int = typer.Option(100, "--groups", min=1, help="alert groups (one incident each)"),
    concurrency: int = ConcurrencyOption,
    list_wait_s: float = ListWaitOption,
    spawn: bool = SpawnOption,
    temporal_address: str | None = TemporalAddressOption,
    temporal_namespace: str | None = TemporalNamespaceOption,
    floor: bool = FloorOption,
    open_incidents: int = OpenIncidentsOption,
    as_json: bool = JsonOption,
) -> None:
    """Post Alertmanager v4 notifications (HA duplicates included); report throughput, latency, incidents,
    lost, beside the same notifications as bare signal-with-start calls (the floor)."""
    from devstack.bench.benches import run_ingest

    _run_load(_load_options(locals()), lambda target: run_ingest(target, notifications, groups), as_json)


@app.command("storm")
def storm(
    url: str = UrlOption,
    token: str | None = TokenOption,
    alerts: int = typer.Option(10_000, "--alerts", min=1, help="distinct alerts in the storm"),
    groups: int = typer.Option(200, "--groups", min=1, help="alert groups (one incident each)"),
    batches: int = typer.Option(5, "--batches", min=1, help="notifications per group as it grows"),
    concurrency: int = ConcurrencyOption,
    list_wait_s: float = ListWaitOption,
    spawn: bool = SpawnOption,
    temporal_address: str | None = TemporalAddressOption,
    temporal_namespace: str | None = TemporalNamespaceOption,
    floor: bool = FloorOption,
    open_incidents: int = OpenIncidentsOption,
    as_json: bool = JsonOption,
) -> None:
    """An alert storm in growing groups sent by an HA Alertmanager pair; report incidents, dedup, loss,
    beside the same notifications as bare signal-with-start calls (the floor)."""
    from devstack.bench.benches import run_storm

    _run_load(_load_options(locals()), lambda target: run_storm(target, alerts, groups, batches), as_json)


@app.command("latency")
def latency(
    incidents: int = typer.Option(
        50, "--incidents", min=1, max=500, help="incidents to time, one after another"
    ),
    per_incident_timeout_s: float = typer.Option(
        30.0, "--per-incident-timeout-s", min=1.0, help="give up on an incident's rollback after this long"
    ),
    kubeconfig: Path | None = typer.Option(
        None,
        "--kubeconfig",
        help="use this cluster (e.g. from `backout cluster up`) instead of starting a local control plane",
    ),
    open_incidents: int = OpenIncidentsOption,
    as_json: bool = JsonOption,
) -> None:
    """Webhook receipt -> rollback patch accepted, on a local control plane and a private backout up; with floor."""
    from kubernetes.client.exceptions import ApiException

    from devstack.bench.latency import run_latency
    from devstack.cluster.local import ClusterError
    from devstack.process import ProcessStartError

    if kubeconfig is not None and not kubeconfig.is_file():
        raise _fail(f"--kubeconfig {kubeconfig}: no such file")
    with tempfile.TemporaryDirectory(prefix="backout-latency-") as work_dir:
        try:
            _run(
                lambda: run_latency(
                    incidents, Path(work_dir), per_incident_timeout_s, kubeconfig, open_incidents
                ),
                as_json,
            )
        except (ProcessStartError, ClusterError, ApiException) as exc:  # the environment, not the input
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc


@app.command("cli")
def cli(
    runs: int = typer.Option(7, "--runs", min=1, help="runs per command (the figures are medians)"),
    only: list[str] = typer.Option(
        [], "--only", help="time only these commands, e.g. --only eval (repeatable; the floor always runs)"
    ),
    attribute: bool = typer.Option(
        True, "--attribute/--no-attribute", help="also time `backout attribute` on a 50-change bundle"
    ),
    as_json: bool = JsonOption,
) -> None:
    """Start-up of the `backout` command as a whole process: wall time and peak RSS, against `python -c pass`."""
    from devstack.bench.cli_startup import run_cli_bench

    result = run_cli_bench(runs, only or None, attribute)
    if as_json:
        typer.echo(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        floor = result.floor
        typer.echo(
            f"floor {floor.name}: {floor.median_s * 1000:.0f} ms, cpu {floor.median_cpu_s * 1000:.0f} ms, "
            f"{floor.median_peak_rss_mib} MiB (load {result.machine['load_1m']} on {result.machine['cpus']} cpus)"
        )
        for timing in result.commands:
            limit = f" (limit {timing.limit_s} s)" if timing.limit_s else ""
            typer.echo(
                f"{'ok  ' if timing.ok else 'SLOW'} backout {timing.name}: {timing.median_s * 1000:.0f} ms{limit}, "
                f"cpu {timing.median_cpu_s * 1000:.0f} ms, {timing.median_peak_rss_mib} MiB, {timing.ratio_to_floor}x the floor"
            )
        if result.ranking_in_process_ms is not None:
            typer.echo(f"ranking alone, in process: {result.ranking_in_process_ms} ms")
        for problem in result.problems:
            typer.echo(f"problem: {problem}")
    if not result.ok:
        raise typer.Exit(1)
