"""The `backout` command. Each domain owns one sub-module with its commands."""

from __future__ import annotations

import typer

from worker.cli import attribution, bench, cluster, demo, evals, kube, paging, runbooks, service

app = typer.Typer(
    name="backout",
    help="Autonomous incident responder for AI services on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

service.register(app)
demo.register(app)
kube.register(app)
attribution.register(app)
app.add_typer(cluster.app, name="cluster")
app.add_typer(evals.app, name="eval")
app.add_typer(runbooks.app, name="runbook")
app.add_typer(paging.app, name="owners")
app.add_typer(bench.app, name="bench")


def main() -> None:
    app()
