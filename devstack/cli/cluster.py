"""`backout cluster` commands: build, up, down, status, env for the loopback control plane."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from devstack.defaults import CLUSTER_STATE_DIR, GO_TOOL_NAMES, KUBERNETES_VERSION

app = typer.Typer(
    no_args_is_help=True, help="Run a local Kubernetes control plane (etcd, apiserver, KWOK nodes)."
)

STATE_DIR_OPTION = typer.Option(CLUSTER_STATE_DIR, "--state-dir", help="where certs, logs and pids live")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@app.command("build")
def build_command(
    version: str = typer.Option(KUBERNETES_VERSION, "--version", help="k8s.io/kubernetes version"),
    with_tools: str = typer.Option(
        "", "--with", help=f"also build these production parts, comma-separated: {', '.join(GO_TOOL_NAMES)}"
    ),
) -> None:
    """Build kube-apiserver, controller-manager, scheduler, kubectl, etcd and kwok into the cache (once)."""
    from devstack import gobuild
    from devstack.cluster import build
    from devstack.tools import TOOLS

    wanted = [name.strip() for name in with_tools.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in TOOLS]
    if unknown:
        raise _fail(f"--with: unknown {', '.join(unknown)} (known: {', '.join(TOOLS)})")
    try:
        info = build.build(version)
        built = [gobuild.build(TOOLS[name]) for name in wanted]
    except (build.BuildError, gobuild.GoBuildError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"control plane {info.kubernetes_version} binaries in {build.binary_dir(version)}")
    for tool in built:
        typer.echo(f"{tool.name} {tool.version} ({tool.go_version}): {', '.join(tool.binaries.values())}")


@app.command("up")
def up_command(
    state_dir: Path = STATE_DIR_OPTION,
    timeout: float = typer.Option(120.0, "--timeout", help="seconds to wait for readiness"),
    fresh: bool = typer.Option(False, "--fresh", help="wipe the etcd data: start with an empty cluster"),
) -> None:
    """Start the control plane in the background and wait until the fake nodes are Ready."""
    from devstack.cluster import build, local

    cluster = local.LocalCluster(state_dir)
    started = time.monotonic()
    try:
        state = cluster.start(timeout_s=timeout, fresh=fresh)
    except (local.ClusterError, build.BuildError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"cluster up at {state.apiserver_url} in {time.monotonic() - started:.1f}s")
    typer.echo(f"export KUBECONFIG={state.kubeconfig}")


@app.command("down")
def down_command(state_dir: Path = STATE_DIR_OPTION) -> None:
    """Stop every process `up` started."""
    from devstack.cluster import local

    stopped = local.LocalCluster(state_dir).stop()
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "no cluster running")


@app.command("status")
def status_command(
    state_dir: Path = STATE_DIR_OPTION,
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Show whether each component runs and how many fake nodes are Ready (exit 1 when not ready)."""
    from devstack.cluster import local

    status = local.LocalCluster(state_dir).status()
    if as_json:
        typer.echo(json.dumps(status.model_dump(), indent=2))
    elif not status.up:
        typer.echo(f"no cluster running (state dir {status.state_dir})")
    else:
        typer.echo(f"apiserver {status.apiserver_url} ({status.version}), {status.nodes_ready} node(s) Ready")
        for component in status.components:
            typer.echo(
                f"  {component.name:<24} pid {component.pid:<8} {'running' if component.running else 'STOPPED'}"
            )
    if not status.ready:
        raise typer.Exit(1)


@app.command("env")
def env_command(state_dir: Path = STATE_DIR_OPTION) -> None:
    """Print `export KUBECONFIG=...` (and PATH for the cached kubectl) for the running cluster: eval "$(...)"."""
    from devstack.cluster import build, local

    cluster = local.LocalCluster(state_dir)
    if cluster.read_state() is None:
        raise _fail(f"no cluster recorded in {cluster.state_dir}; run `backout cluster up` first")
    typer.echo(f"export KUBECONFIG={cluster.kubeconfig}")
    typer.echo(f'export PATH="{build.binary_dir(cluster.version)}:$PATH"  # kubectl')
