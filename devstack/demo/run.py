"""`backout demo`: three changes across services, one of them bad; backout finds it, rolls it back, verifies, pages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from activities.prometheus import PrometheusError, query_range
from devstack.demo import workloads
from devstack.demo.gitops_report import GitOpsReport, gitops_report
from devstack.demo.report import (
    EvidenceChoice,
    IncidentReportDoc,
    Marker,
    PlotPanel,
    alert_expression,
    bundle_evidence,
    evidence_choice,
    evidence_panel,
    phases_for,
    render_html,
    render_terminal,
    symptom_panel,
)
from devstack.demo.stack import API_TOKEN, GOLDEN_MANIFEST, SERVICE, Stack, StackOptions, running_stack
from evals.golden import golden_path, load_golden_set, load_manifest
from evals.schedule import ensure_schedule
from evals.store import EvalStore
from incidents.bundle import IncidentBundle
from incidents.models import TERMINAL_STATES, IncidentView

BAD_PROMPT_VERSION = "prompt-v7-terse"
EVAL_EVERY = timedelta(seconds=15)


async def _traffic(stack: Stack, stop: asyncio.Event) -> None:
    """Steady user traffic so the service's own metrics move (a few requests a second)."""
    manifest = load_manifest(GOLDEN_MANIFEST)
    questions = [item for item in load_golden_set(golden_path(GOLDEN_MANIFEST, manifest))]
    rng = random.Random(11)
    async with httpx.AsyncClient(base_url=stack.simservice_url, timeout=10) as http:
        while not stop.is_set():
            item = rng.choice(questions)
            messages = (
                item.input if isinstance(item.input, list) else [{"role": "user", "content": item.input}]
            )
            body = {
                "model": manifest.model,
                "messages": [m if isinstance(m, dict) else m.model_dump() for m in messages],
            }
            with contextlib.suppress(httpx.HTTPError):
                await http.post("/v1/chat/completions", json=body)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.25)


async def _api(stack: Stack, path: str) -> Any:
    async with httpx.AsyncClient(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10
    ) as http:
        response = await http.get(path)
        response.raise_for_status()
        return response.json()


async def _find_incident(stack: Stack) -> str | None:
    listing = await _api(stack, "/v1/incidents")
    for item in listing["incidents"]:
        if item.get("service") == SERVICE and item.get("namespace") == workloads.NAMESPACE:
            return str(item["id"])
    return None


LIVE_ROWS = 22


def _progress_table(events: list[tuple[datetime, str]], view: IncidentView | None) -> Table:
    """What the demo did and what the incident logged, one list in time order (the newest rows)."""
    rows = [(when, "demo", what) for when, what in events]
    if view is not None:
        rows += [(entry.at, entry.kind, entry.message) for entry in view.timeline_for_people()]
    rows.sort(key=lambda row: row[0])
    table = Table(title="backout demo", expand=True)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("who", no_wrap=True)
    table.add_column("what")
    for when, who, what in rows[-LIVE_ROWS:]:
        table.add_row(when.strftime("%H:%M:%S"), who, what)
    if view is not None:
        table.caption = f"incident {view.id}: {view.state}"
    return table


async def run_demo(
    state_dir: Path,
    console: Console,
    timeout_s: float = 420.0,
    production_temporal: bool = False,
    gitops: bool = False,
) -> IncidentReportDoc:
    options = StackOptions(
        state_dir=state_dir,
        bad_prompts=[BAD_PROMPT_VERSION],
        production_temporal=production_temporal,
        gitops=gitops,
    )
    events: list[tuple[datetime, str]] = []

    def say(message: str, at: datetime | None = None) -> None:
        events.append((at or datetime.now(UTC), message))

    started = time.monotonic()
    console.print(
        "[bold]backout demo[/]: starting the local control plane, Temporal, backout, the AI service, Prometheus"
    )
    async with running_stack(options) as stack:
        console.print(
            f"  cluster {stack.cluster.kubeconfig}\n  backout API {stack.api_url}  Temporal {stack.temporal_address}"
            f" (UI {stack.temporal_ui_url or 'none: temporal-server on PostgreSQL'})\n"
            f"  simulated service {stack.simservice_url}  Prometheus {stack.prometheus_url}"
        )
        stop_traffic = asyncio.Event()
        traffic = asyncio.create_task(_traffic(stack, stop_traffic))
        fleet = stack.fleet
        if fleet is not None:  # a reviewer merges backout's revert request, as a human would
            background = asyncio.create_task(fleet.review(stop_traffic))
        manifest = load_manifest(GOLDEN_MANIFEST)
        await ensure_schedule(
            stack.client,
            GOLDEN_MANIFEST,
            manifest,
            EVAL_EVERY,
            stack.settings.task_queue,
            stack.settings.state_dir,
            endpoint=stack.simservice_url,
            trigger_now=True,
        )
        changes: list[Marker] = []
        incident_id: str | None = None
        view: IncidentView | None = None
        try:
            with Live(
                _progress_table(events, None), console=console, refresh_per_second=4, transient=False
            ) as live:
                say("service healthy; golden-set eval scheduled every 15s; collecting a baseline")
                await _wait_for_baseline(stack, manifest.name, live, events)
                say("baseline pinned; deploying three changes across services")
                live.update(_progress_table(events, None))
                changes_to = workloads.ClusterChanges(stack.apis) if fleet is None else fleet
                plan = [
                    ("corpus re-index on retriever", "change", lambda: changes_to.set_corpus("corpus-2026-11-27")),
                    (f"prompt {BAD_PROMPT_VERSION} on rag-api (bad)", "bad_change", lambda: changes_to.set_prompt(BAD_PROMPT_VERSION, workloads.BAD_PROMPT)),
                    ("gateway image 1.4.1", "change", lambda: changes_to.set_image("gateway", "registry.local/gateway:1.4.1", "gateway 1.4.1: connection pool tuning")),
                ]  # fmt: skip
                for label, kind, apply in plan:
                    sha = await asyncio.to_thread(apply)
                    changes.append(Marker(at=datetime.now(UTC), label=label, kind=kind))  # type: ignore[arg-type]
                    say(f"deployed {label}" + (f" (commit {sha[:12]}, applied by Flux)" if sha else ""))
                    live.update(_progress_table(events, None))
                    await asyncio.sleep(12)
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    if incident_id is None:
                        incident_id = await _find_incident(stack)
                    if incident_id is not None:
                        view = IncidentView.model_validate(await _api(stack, f"/v1/incidents/{incident_id}"))
                        if view.state in TERMINAL_STATES and not _durable_fix_pending(view):
                            live.update(_progress_table(events, view))
                            break
                    live.update(_progress_table(events, view))
                    await asyncio.sleep(1.0)
                if view is not None and view.state == "recovered" and view.eval is not None:
                    say("recovered: waiting for the next scheduled golden-set run, for the report's plot")
                    live.update(_progress_table(events, view))
                    await _next_eval_run(stack, view, EVAL_EVERY + timedelta(seconds=5))
        finally:
            stop_traffic.set()
            await traffic
            if fleet is not None:
                await background
        if view is None:
            raise RuntimeError(f"no incident reached a final state within {timeout_s:.0f}s")
        await asyncio.sleep(1.0)  # let the last notifications land at the receivers
        doc = await _report(stack, view, changes)
    if not console.is_terminal:
        console.print()  # off a terminal, the live table's last frame ends without a newline
    console.print(f"demo finished in {time.monotonic() - started:.0f}s")
    return doc


def _durable_fix_pending(view: IncidentView) -> bool:
    """Recovered while the GitOps handshake still waits for Git, resumes or verifies."""
    progress = view.gitops
    return view.state == "recovered" and progress is not None and progress.stage != "reconciled"


async def _next_eval_run(stack: Stack, view: IncidentView, timeout: timedelta) -> None:
    """Until a golden-set run lands after the incident's last timeline entry (or `timeout` passes)."""
    assert view.eval is not None
    store = EvalStore(stack.settings.state_dir, view.eval.manifest)
    after = max(entry.at for entry in view.timeline)
    deadline = time.monotonic() + timeout.total_seconds()
    while time.monotonic() < deadline:
        if any(point.time > after for point in store.history(limit=3)):
            return
        await asyncio.sleep(1.0)


async def _wait_for_baseline(
    stack: Stack, manifest_name: str, live: Live, events: list[tuple[datetime, str]]
) -> None:
    pin = stack.settings.state_dir / "evals" / manifest_name / "baseline" / "pin.json"
    deadline = time.monotonic() + 180
    while not pin.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the golden-set baseline was not pinned within 180s ({pin})")
        live.update(_progress_table(events, None))
        await asyncio.sleep(1.0)


async def _report(stack: Stack, view: IncidentView, markers: list[Marker]) -> IncidentReportDoc:
    bundle = await stack.client.get_workflow_handle(view.id).query("bundle", result_type=IncidentBundle)
    changes = bundle.changes if bundle else []
    bad = next((m for m in markers if m.kind == "bad_change"), None)
    expected = None
    if bad is not None:
        expected = next((c.id for c in changes if c.to_version == BAD_PROMPT_VERSION), None)
    culprit = view.attribution.ranking[0].change_id if view.attribution and view.attribution.ranking else None
    rolled_back = [
        a.target or "" for a in view.actions if a.action == "rollback" and a.outcome == "Successful"
    ]
    all_markers = list(markers)
    all_markers.append(Marker(at=view.opened_at, label="incident opened", kind="detected"))
    rollback_at = next((a.at for a in view.actions if a.action == "rollback"), None)
    if rollback_at is not None:
        all_markers.append(Marker(at=rollback_at, label="rollback", kind="rollback"))
    if view.state == "recovered":
        recovered_at = next((e.at for e in view.timeline if e.step == "recovered"), view.updated_at)
        all_markers.append(Marker(at=recovered_at, label="recovered", kind="recovered"))
    start = min(m.at for m in all_markers) - timedelta(seconds=60)
    end = datetime.now(UTC)
    symptom = await _symptom(stack, view, start, end)
    choice = evidence_choice(view, bundle)
    evidence = await _evidence(stack, choice, bundle, start, end) if choice is not None else None
    return IncidentReportDoc(
        incident=view,
        changes=changes,
        bundle=bundle,
        expected_culprit=expected,
        culprit=culprit,
        culprit_correct=(culprit == expected) if expected else None,
        rolled_back=rolled_back,
        recovered=view.state == "recovered",
        pages={
            "pagerduty": [f"{action} {key}" for action, key in stack.paging.pagerduty.actions()]
            + [f"change event: {c['payload']['summary']}" for c in stack.paging.pagerduty.change_events],
            "slack": [
                line.strip() for line in stack.paging.describe() if line.startswith(("slack", "  reply"))
            ],
        },
        phases=phases_for(view, bad.at if bad else None),
        symptom=symptom,
        evidence=evidence,
        markers=all_markers,
        gitops=await _gitops(stack, view, bad.at if bad else None),
    )


async def _gitops(stack: Stack, view: IncidentView, first_bad: datetime | None) -> GitOpsReport | None:
    """The handshake as the report shows it, with the reconciler and the prompt as they are now."""
    fleet, progress = stack.fleet, view.gitops
    if fleet is None or progress is None:
        return None
    kustomization = await asyncio.to_thread(fleet.kustomization)
    prompt = await asyncio.to_thread(
        stack.apis.core.read_namespaced_config_map, workloads.PROMPT_CONFIGMAP, workloads.NAMESPACE
    )
    applied = str((kustomization.get("status") or {}).get("lastAppliedRevision", "-"))
    suspended = "suspended" if (kustomization.get("spec") or {}).get("suspend") else "reconciling"
    final = (
        f"Kustomization {suspended}, last applied {applied}; {workloads.PROMPT_CONFIGMAP} carries "
        f"{(prompt.data or {}).get('prompt_version', '?')}; main is at {fleet.fleet.log(1)[0] if fleet.fleet else '-'}"
    )
    commits = [f"{sha[:12]} {what}" for _, sha, what in fleet.commits]
    recovered_at = next((e.at for e in view.timeline if e.step == "recovered"), None)
    return gitops_report(progress, commits, final, first_bad, recovered_at)


async def _symptom(stack: Stack, view: IncidentView, start: datetime, end: datetime) -> PlotPanel:
    """The series that opened the incident, from before the changes to after the rollback."""
    if view.eval is not None:
        history = EvalStore(stack.settings.state_dir, view.eval.manifest).history()
        runs = [(point.time, point.pass_rate) for point in history if start <= point.time <= end]
        source = f"every golden-set run of {view.eval.manifest} (the eval store), scheduled and rechecks"
        return symptom_panel(view, runs or list(view.eval.series), source)
    named = alert_expression(view)
    points: list[tuple[datetime, float]] = []
    if named is not None:
        try:
            found = await asyncio.to_thread(query_range, stack.prometheus_url, named[1], start, end, 2.0)
        except PrometheusError:
            found = []
        points = found[0].points if found else []
    return symptom_panel(view, points, f"Prometheus at {stack.prometheus_url}")


async def _evidence(
    stack: Stack, choice: EvidenceChoice, bundle: IncidentBundle | None, start: datetime, end: datetime
) -> PlotPanel | None:
    """The culprit's metric per version over the whole demo, by the evidence query that fed the bundle;
    the bundle's own series when Prometheus has none."""
    namespace = choice.change.namespace or workloads.NAMESPACE
    for evidence in stack.settings.evidence_queries:
        if evidence.name != choice.metric or evidence.version_label is None:
            continue
        query = evidence.query.replace("{namespace}", namespace).replace("{service}", choice.change.service)
        try:
            found = await asyncio.to_thread(query_range, stack.prometheus_url, query, start, end, 2.0)
        except PrometheusError:
            continue
        by_version: dict[str | None, list[tuple[datetime, float]]] = {}
        for series in found:
            if series.labels.get("service", choice.change.service) == choice.change.service:
                by_version.setdefault(series.labels.get(evidence.version_label), []).extend(series.points)
        if by_version:
            return evidence_panel(choice, by_version, f"Prometheus: {query}")
    return bundle_evidence(choice, bundle) if bundle is not None else None


def write_outputs(doc: IncidentReportDoc, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "incident-report.json"
    html_path = out_dir / "incident-report.html"
    json_path.write_text(json.dumps(doc.model_dump(mode="json"), indent=2), encoding="utf-8")
    html_path.write_text(render_html(doc), encoding="utf-8")
    return json_path, html_path


def main(
    state_dir: Path, as_json: bool, out_dir: Path, production_temporal: bool = False, gitops: bool = False
) -> int:
    console = Console(stderr=as_json)
    doc = asyncio.run(run_demo(state_dir, console, production_temporal=production_temporal, gitops=gitops))
    json_path, html_path = write_outputs(doc, out_dir)
    render_terminal(doc, console)
    console.print(f"report: {html_path} (open in a browser), data: {json_path}")
    if as_json:
        print(json.dumps(doc.model_dump(mode="json"), indent=2))
    ok = bool(doc.recovered and doc.culprit_correct and doc.rolled_back)
    if gitops:  # reverted in Git, Flux resumed and applying the good version
        ok = ok and doc.gitops is not None and doc.gitops.durable
    return 0 if ok else 1
