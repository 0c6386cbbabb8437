"""`python -m devstack.simservice --port P [--versions-file F | --kube-deployment D ...]`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer
import uvicorn

from devstack.simservice.app import create_app
from devstack.simservice.behaviour import QualityKnobs
from devstack.simservice.versions import (
    DeployedVersions,
    FileVersionSource,
    KubeTargets,
    KubeVersionSource,
    StaticVersionSource,
    VersionSource,
    VersionSourceError,
)

cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@cli.command()
def serve(
    port: int = typer.Option(8000, help="TCP port (0 = any free port; the chosen port is printed)"),
    host: str = typer.Option("127.0.0.1", help="bind address"),
    model_version: str = typer.Option("llm-v1", help="static source: deployed model version"),
    prompt_version: str = typer.Option("prompt-v1", help="static source: deployed prompt version"),
    corpus_version: str = typer.Option("corpus-v1", help="static source: deployed corpus version"),
    versions_file: Path | None = typer.Option(
        None, help="YAML/JSON file with the versions, re-read on change"
    ),
    kube_namespace: str | None = typer.Option(None, help="read versions from this namespace"),
    kube_deployment: str | None = typer.Option(
        None, help="Deployment whose backout.dev/model-version is read"
    ),
    prompt_configmap: str | None = typer.Option(
        None, help="ConfigMap holding the prompt template and version"
    ),
    corpus_configmap: str | None = typer.Option(None, help="ConfigMap holding the corpus version"),
    kubeconfig: Path | None = typer.Option(None, help="kubeconfig for the cluster source"),
    poll_interval: float = typer.Option(1.0, help="seconds between cluster polls"),
    bad_marker: str = typer.Option("bad", help="a version whose name contains this is bad ('' = none)"),
    bad_model: list[str] = typer.Option([], help="model version that hallucinates (repeatable)"),
    bad_prompt: list[str] = typer.Option([], help="prompt version that breaks retrieval (repeatable)"),
    bad_corpus: list[str] = typer.Option([], help="corpus version that breaks retrieval (repeatable)"),
    flake_rate: float = typer.Option(0.01, help="wrong-answer rate of good versions"),
    hallucination_rate: float = typer.Option(0.6, help="wrong-answer rate of a bad model"),
    retrieval_miss_rate: float = typer.Option(0.7, help="retrieval miss rate of a bad prompt or corpus"),
    latency_scale: float = typer.Option(1.0, help="multiplies every simulated delay (0 = instant)"),
    error_rate: float = typer.Option(0.0, help="share of requests answered with HTTP 500"),
    seed: int | None = typer.Option(None, help="random seed for reproducible answers"),
) -> None:
    """Serve the simulated Orbitdesk assistant (OpenAI-compatible) and its /metrics."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        knobs = QualityKnobs(
            bad_marker=bad_marker,
            bad_models=bad_model,
            bad_prompts=bad_prompt,
            bad_corpora=bad_corpus,
            good_flake_rate=flake_rate,
            bad_hallucination_rate=hallucination_rate,
            bad_retrieval_miss_rate=retrieval_miss_rate,
            latency_scale=latency_scale,
        )
        static = DeployedVersions(
            model_version=model_version, prompt_version=prompt_version, corpus_version=corpus_version
        )
        source: VersionSource
        if versions_file is not None:
            source = FileVersionSource(versions_file)
        elif kube_deployment is not None:
            if kube_namespace is None:
                raise VersionSourceError("--kube-deployment needs --kube-namespace")
            targets = KubeTargets(
                namespace=kube_namespace,
                deployment=kube_deployment,
                prompt_configmap=prompt_configmap,
                corpus_configmap=corpus_configmap,
                kubeconfig=kubeconfig,
                poll_interval_s=poll_interval,
            )
            source = KubeVersionSource(targets, fallback=static)
        else:
            source = StaticVersionSource(static)
    except (VersionSourceError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    app = create_app(source, knobs, seed=seed, error_rate=error_rate)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    typer.echo(f"simservice listening on http://{host}:{port} versions={source.current().model_dump()}")
    sys.stdout.flush()
    try:
        server.run()
    finally:
        source.close()


if __name__ == "__main__":
    cli()
