"""`backout changes` and `backout rollback`: the change ledger and remediation from a shell.

They run the same code as the Temporal activities (activities/kube), against the
cluster named by BACKOUT_KUBECONFIG or KUBECONFIG.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # the Kubernetes client and Temporal load when a command runs, not for --help
    from temporalio.exceptions import ApplicationError

    from config import Settings
    from incidents.bundle import Change
    from incidents.remediation import RemediationResult, VerificationResult

DURATION = re.compile(r"^(\d+)([smhd])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
ROLLBACK_KINDS = ("deployment", "configmap", "secret")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """`2h`, `30m`, `90s`, `1d`, or an RFC 3339 time."""
    match = DURATION.match(value.strip())
    if match:
        return (now or datetime.now(UTC)) - timedelta(
            seconds=int(match.group(1)) * UNIT_SECONDS[match.group(2)]
        )
    from incidents.bundle import parse_timestamp

    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise ValueError(f"--since {value!r}: use a duration like 2h, 30m, 1d or an RFC 3339 time") from exc


def parse_target(value: str) -> tuple[str, str]:
    kind, _, name = value.partition("/")
    aliases = {
        "deploy": "deployment",
        "deployments": "deployment",
        "cm": "configmap",
        "configmaps": "configmap",
    }
    kind = aliases.get(kind.lower(), kind.lower())
    if not name or kind not in ROLLBACK_KINDS:
        raise ValueError(f"target {value!r}: expected deployment/NAME, configmap/NAME or secret/NAME")
    return kind, name


def _load_settings() -> Settings:
    from config import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        raise _fail(str(exc)) from exc


def _application_error_exit(exc: ApplicationError) -> typer.Exit:
    bad_input = exc.non_retryable and exc.type not in ("KubeForbidden", "KubeUnauthorized")
    return _fail(exc.message, code=2 if bad_input else 1)


def changes_command(
    namespace: list[str] = typer.Option([], "--namespace", "-n", help="namespace (repeatable; default: all)"),
    since: str = typer.Option("2h", "--since", help="duration (2h, 30m, 1d) or RFC 3339 time"),
    as_json: bool = typer.Option(False, "--json", help="print incident-bundle Change records as JSON"),
) -> None:
    """List recent Deployment, ConfigMap and Secret changes (and POST /v1/changes reports)."""
    from temporalio.exceptions import ApplicationError

    from activities.kube import activities as kube_activities

    try:
        since_time = parse_since(since)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    settings = _load_settings()
    request = kube_activities.ListChangesRequest(namespaces=namespace, since=since_time)
    try:
        changes = kube_activities.list_changes(settings, request)
    except ApplicationError as exc:
        raise _application_error_exit(exc) from exc
    changes.extend(_reported_changes(settings, namespace, since_time))
    changes.sort(key=lambda change: (change.started_at, change.id))
    if as_json:
        typer.echo(json.dumps([change.model_dump(mode="json") for change in changes], indent=2))
        return
    if not changes:
        typer.echo("no changes")
    for change in changes:
        when = change.started_at.strftime("%Y-%m-%d %H:%M:%S")
        versions = f"{change.from_version} -> {change.to_version}"
        commit = change.gitops.commit if change.gitops is not None else None
        via = f"  [git {commit.sha[:12]} by {commit.author}: {commit.message}]" if commit is not None else ""
        typer.echo(
            f"{when}  {change.kind:<7} {change.namespace}/{change.service:<20} {versions:<30} {change.description}{via}"
        )


def _reported_changes(settings: Settings, namespaces: list[str], since: datetime) -> list[Change]:
    from activities.changes_store import ChangeStore, StoreUnavailable

    if settings.database_url is None and not settings.change_store_file.exists():
        return []
    store = ChangeStore.of(settings)
    try:
        if not namespaces:
            return store.list(since)
        return [change for ns in namespaces for change in store.list(since, namespace=ns)]
    except StoreUnavailable as exc:
        raise _fail(str(exc)) from exc
    finally:
        store.close()


def rollback_command(
    target: str = typer.Argument(..., help="deployment/NAME, configmap/NAME or secret/NAME"),
    namespace: str = typer.Option(..., "--namespace", "-n", help="namespace of the target"),
    to_revision: int | None = typer.Option(
        None, "--to-revision", help="Deployment revision (default: previous)"
    ),
    to_version: str | None = typer.Option(None, "--to-version", help="recorded ConfigMap/Secret version"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="server-side dry run: show the diff, change nothing"
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="wait for the Deployment rollout to finish"),
    timeout: int = typer.Option(300, "--timeout", help="seconds to wait for the rollout"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Roll back a Deployment (kubectl rollout undo semantics) or restore a ConfigMap/Secret version."""
    from temporalio.exceptions import ApplicationError

    from activities.kube import activities as kube_activities
    from incidents.remediation import RemediationRequest

    try:
        kind, name = parse_target(target)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    if kind == "deployment" and to_version is not None:
        raise _fail("--to-version applies to configmap/secret targets; use --to-revision for Deployments")
    if kind != "deployment" and to_revision is not None:
        raise _fail("--to-revision applies to Deployments; use --to-version for configmap/secret")
    if to_revision is not None and to_revision < 1:
        raise _fail("--to-revision must be a positive revision number")
    settings = _load_settings()
    request = RemediationRequest(
        incident_id=f"cli-{uuid.uuid4().hex[:12]}",
        operation="rollback",
        target_type=kind,  # type: ignore[arg-type]
        name=name,
        namespace=namespace,
        to_revision=to_revision,
        to_version=to_version,
        dry_run=dry_run,
    )
    try:
        result = kube_activities.remediate_now(settings, request)
        verification = None
        if result.applied and wait and kind == "deployment":
            verification = _wait_for_rollout(settings, kind, name, namespace, timeout)
    except ApplicationError as exc:
        raise _application_error_exit(exc) from exc
    _print_result(result, verification, as_json)
    if result.outcome != "Successful" or (verification is not None and verification.outcome != "Successful"):
        raise typer.Exit(1)


def _wait_for_rollout(
    settings: Settings, kind: str, name: str, namespace: str, timeout: int
) -> VerificationResult:
    from activities.kube import verify
    from activities.kube.client import apis_from_settings, classify
    from incidents.remediation import VerifyRequest

    apis = apis_from_settings(settings)
    try:
        request = VerifyRequest(target_type=kind, name=name, namespace=namespace, timeout_s=timeout)  # type: ignore[arg-type]
        return verify.verify(apis, request)
    except Exception as exc:
        raise classify(exc, f"verifying {kind}/{namespace}/{name}") from exc
    finally:
        apis.close()


def _print_result(result: RemediationResult, verification: VerificationResult | None, as_json: bool) -> None:
    if as_json:
        payload = {"remediation": result.model_dump(mode="json")}
        if verification is not None:
            payload["verification"] = verification.model_dump(mode="json")
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(f"{result.outcome}: {result.message}")
    if result.diff:
        typer.echo(result.diff)
    if verification is not None:
        typer.echo(f"verification {verification.outcome}: {verification.message}")
