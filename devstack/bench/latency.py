"""`backout bench latency`: webhook receipt -> rollback patch accepted by the apiserver, and its floor.

Real parts only: the local control plane (cluster/), a private `backout up` (embedded
Temporal, worker, API) with an auto-mode rollback runbook and no settle wait, and the
change API. Each incident is timed from just before its webhook POST until a watch on
the Deployments sees the rolled-back template (an upper bound on "patch accepted").
Each incident gets its own namespace holding one Deployment with one bad change, so the
bench times the response path, not the attribution of look-alike changes.

The floor (latency_parts) is measured in the same run, interleaved: after each incident has
settled, one bare workflow round trip and one bare patch, so a burst of load on the shared
machine hits both alike. `--open-incidents N` first opens N incidents that stay open (in their
cool-down) throughout, to show how the cost grows with the work backout holds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from kubernetes import client as kube_client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, Field
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from devstack.bench.background import (
    WORKING_STATES,
    OpenIncidents,
    background_run_id,
    open_background,
    still_open,
)
from devstack.bench.latency_parts import (
    BAD_IMAGE,
    GOOD_IMAGE,
    SERVICE,
    RollbackWatch,
    WorkflowFloor,
    patch_floor,
    prepare_deployments,
)
from devstack.bench.machine import Load, Memory, read_memory
from devstack.bench.payloads import bench_namespace
from devstack.bench.runner import BenchError, RetryPolicy, auth_headers
from devstack.bench.stack import SpawnedStack

NAMESPACE_PREFIX = "backout-latency"
ALERTNAME = "BackoutLatencyBench"
TARGET_P99_MS = 1000.0
# Acceptance of issue 17, against the floor measured in the same run.
TARGET_P50_RATIO = 1.6
TARGET_P99_RATIO = 2.0
# Floor samples at least this many, whatever the number of incidents.
MIN_FLOOR_SAMPLES = 10

RUNBOOK = f"""\
name: latency-bench
mode: auto
match:
  alertnames: [{ALERTNAME}]
start: culprit
nodes:
  culprit:
    if: attribution.available and attribution.top.kind == "image"
    then: roll_back
    else: escalate
  roll_back:
    actions:
      - rollback:
          kinds: [image]
  escalate:
    actions:
      - escalate:
          reason: latency bench found no image change
"""


class PathToPatch(BaseModel):
    """What incidents did before the rollback's activity was scheduled, from their histories: how
    many workflow tasks it took, the activities and local activities before it."""

    workflow_tasks: int
    activities: list[str]
    local_activities: int
    incidents: int = 1


# Where an incident's time to its patch went, from its history's event times (the Temporal server's
# clock, the same machine's as the bench's): the webhook call up to the run's start, the wait for
# the first workflow task, the workflow task(s) up to the one that scheduled `remediate` (the local
# activities inside), the dispatch of `remediate`, and `remediate` up to the watch seeing the patch.
PHASES = (
    "webhook_to_start",
    "start_to_first_task",
    "tasks_to_remediate",
    "remediate_dispatch",
    "remediate_to_patch",
)


class Phases(BaseModel):
    """Each phase's p50 and p99 over the incidents timed (ms), by name (PHASES)."""

    p50_ms: dict[str, float] = Field(default_factory=dict)
    p99_ms: dict[str, float] = Field(default_factory=dict)
    incidents: int = 0


class LatencyResult(BaseModel):
    bench: str = "latency"
    incidents: int
    rolled_back: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    first_ms: float | None = Field(default=None, description="the first incident (a worker not yet warm)")
    floor_workflow_p50_ms: float | None
    floor_workflow_p99_ms: float | None
    floor_patch_p50_ms: float | None
    floor_patch_p99_ms: float | None
    floor_p50_ms: float | None
    floor_p99_ms: float | None
    ratio_p50: float | None
    ratio_p99: float | None
    target_p99_ms: float = TARGET_P99_MS
    target_p50_ratio: float = TARGET_P50_RATIO
    target_p99_ratio: float = TARGET_P99_RATIO
    targets_met: bool | None = None
    target_misses: list[str] = Field(default_factory=list)
    paths_to_patch: list[PathToPatch] = Field(
        default_factory=list, description="the distinct ways incidents went to their rollback"
    )
    phases: Phases = Field(default_factory=Phases, description="where the time to the patch went (PHASES)")
    load: Load
    memory: Memory = Field(default_factory=Memory)
    open_incidents: OpenIncidents | None = None
    incident_states: dict[str, int] = Field(default_factory=dict)
    step_mean_ms: dict[str, float] = Field(
        default_factory=dict,
        description="mean duration of each incident step (activity), from the worker's metrics",
    )
    slowest: list[str] = Field(
        default_factory=list,
        description="the slowest incident's timeline up to its rollback: '+ms step: message' from opening",
    )
    ok: bool
    problems: list[str]


def _ms(values: list[float], quantile: float) -> float | None:
    return round(float(np.percentile(values, quantile * 100)) * 1000, 2) if values else None


def _change(namespace: str, started_at: datetime) -> dict[str, Any]:
    return {
        "id": f"{namespace}-{SERVICE}-image-v2",
        "service": SERVICE,
        "namespace": namespace,
        "kind": "image",
        "started_at": started_at.isoformat(),
        "completed_at": started_at.isoformat(),
        "from_version": GOOD_IMAGE,
        "to_version": BAD_IMAGE,
        "author": "backout-bench",
        "description": "latency bench: bad image",
        "rollback": {"type": "deployment", "name": SERVICE, "namespace": namespace, "revision": 2},
    }


def _notification(namespace: str, run_id: str) -> dict[str, Any]:
    labels = {"alertname": ALERTNAME, "namespace": namespace, "service": SERVICE, "severity": "critical"}
    group = {"namespace": namespace, "service": SERVICE}
    return {
        "version": "4",
        "groupKey": "{}:{" + f'namespace="{namespace}", run="{run_id}", service="{SERVICE}"' + "}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "backout",
        "groupLabels": group,
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.bench.invalid:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"{SERVICE} in {namespace} is failing"},
                "startsAt": datetime.now(UTC).isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.bench.invalid/graph",
                "fingerprint": uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{run_id}").hex[:16],
            }
        ],
    }


async def _why_not(http: httpx.AsyncClient, incident_id: str | None) -> str:
    """The incident's own account of why it did not roll back: state and last error or decision."""
    if not incident_id:
        return "the webhook named no incident"
    response = await http.get(f"/v1/incidents/{incident_id}")
    if response.status_code != 200:
        return f"GET incident answered HTTP {response.status_code}"
    view = response.json()
    timeline = view.get("timeline", [])
    errors = [e["message"] for e in timeline if e.get("kind") == "error"]
    decisions = [e["message"] for e in timeline if e.get("kind") == "decision"]
    first = (errors or decisions or [view.get("summary") or "no timeline"])[0]
    return f"state {view.get('state')}: {first}"[:400]


async def _timeline_until_rollback(http: httpx.AsyncClient, incident_id: str) -> list[str]:
    """Where an incident's time went: each timeline entry as an offset from its opening."""
    response = await http.get(f"/v1/incidents/{incident_id}")
    if response.status_code != 200:
        return [f"GET incident answered HTTP {response.status_code}"]
    view = response.json()
    opened = datetime.fromisoformat(view["opened_at"])
    lines: list[str] = []
    for entry in view.get("timeline", []):
        offset_ms = (datetime.fromisoformat(entry["at"]) - opened).total_seconds() * 1000
        lines.append(f"+{offset_ms:.0f}ms {entry['step']}: {entry['message']}"[:200])
        if entry.get("kind") == "action" and entry.get("step") == "rollback":
            break
    return lines


async def _step_means(http: httpx.AsyncClient) -> dict[str, float]:
    """Mean activity duration per step from backout_step_duration_seconds (worker and API share a process)."""
    response = await http.get("/metrics")
    if response.status_code != 200:
        return {}
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        if family.name != "backout_step_duration_seconds":
            continue
        for sample in family.samples:
            step = sample.labels.get("step", "?")
            if sample.name.endswith("_sum"):
                sums[step] = sums.get(step, 0.0) + sample.value
            elif sample.name.endswith("_count"):
                counts[step] = counts.get(step, 0.0) + sample.value
    return {step: round(sums[step] / counts[step] * 1000, 2) for step in sorted(sums) if counts.get(step)}


async def _incident_states(http: httpx.AsyncClient, namespaces: set[str]) -> dict[str, int]:
    response = await http.get("/v1/incidents", params={"limit": 1000})
    states: dict[str, int] = {}
    for item in response.json().get("incidents", []):
        if item.get("namespace") in namespaces and item.get("service") == SERVICE:
            states[str(item.get("state"))] = states.get(str(item.get("state")), 0) + 1
    return states


async def _settled(http: httpx.AsyncClient, incident_id: str, timeout_s: float) -> None:
    """Wait until the incident has finished its response (the rest of it must not weigh on the
    floor's sample or the next incident)."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        response = await http.get(f"/v1/incidents/{incident_id}")
        if response.status_code == 200 and response.json().get("state") not in WORKING_STATES:
            return
        await asyncio.sleep(0.05)


def _seconds(event: Any) -> float:
    return float(event.event_time.ToMicroseconds()) / 1e6


def _phases_of(events: list[Any], sent_at: float, seen_at: float) -> dict[str, float] | None:
    """The PHASES of one incident (seconds), from its history and the wall-clock times the webhook
    was sent and the patch seen; None when its history has no `remediate` activity."""
    started = first_task = task_done = scheduled = None
    scheduled_id = None
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            started = _seconds(event)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and first_task is None:
            first_task = _seconds(event)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and scheduled_id is None:
            task_done = _seconds(event)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and scheduled_id is None:
            if event.activity_task_scheduled_event_attributes.activity_type.name == "remediate":
                scheduled, scheduled_id = _seconds(event), event.event_id
        elif (
            kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and scheduled_id is not None
            and event.activity_task_started_event_attributes.scheduled_event_id == scheduled_id
        ):
            activity_started = _seconds(event)
            if started is None or first_task is None or task_done is None or scheduled is None:
                return None
            return dict(
                zip(
                    PHASES,
                    (
                        started - sent_at,
                        first_task - started,
                        task_done - first_task,
                        activity_started - task_done,
                        seen_at - activity_started,
                    ),
                    strict=True,
                )
            )
    return None


def _phase_summary(per_incident: list[dict[str, float]]) -> Phases:
    return Phases(
        p50_ms={name: _ms([p[name] for p in per_incident], 0.5) or 0.0 for name in PHASES}
        if per_incident
        else {},
        p99_ms={name: _ms([p[name] for p in per_incident], 0.99) or 0.0 for name in PHASES}
        if per_incident
        else {},
        incidents=len(per_incident),
    )


def _path_to_patch(events: list[Any]) -> PathToPatch | None:
    """Workflow tasks, activities and local activities before the `remediate` activity was scheduled."""
    tasks = 0
    activities: list[str] = []
    local = 0
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            tasks += 1
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            local += event.marker_recorded_event_attributes.marker_name == "core_local_activity"
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            if name == "remediate":
                return PathToPatch(workflow_tasks=tasks, activities=activities, local_activities=local)
            activities.append(name)
    return None


async def _paths_to_patch(
    temporal_address: str, incident_ids: list[str], timed: dict[str, tuple[float, float]]
) -> tuple[list[PathToPatch], Phases]:
    """The distinct paths to the patch, and the phases of the incidents in `timed` (id: the wall
    clock when its webhook was sent and when its patch was seen)."""
    client = await Client.connect(temporal_address)
    paths: dict[str, PathToPatch] = {}
    phases: list[dict[str, float]] = []
    for incident_id in incident_ids:
        history = await client.get_workflow_handle(incident_id).fetch_history()
        events = list(history.events)
        if incident_id in timed:
            found = _phases_of(events, *timed[incident_id])
            if found is not None:
                phases.append(found)
        path = _path_to_patch(events)
        if path is None:
            continue
        key = path.model_dump_json(exclude={"incidents"})
        if key in paths:
            paths[key].incidents += 1
        else:
            paths[key] = path
    return list(paths.values()), _phase_summary(phases)


async def run_latency(
    incidents: int,
    work_dir: Path,
    per_incident_timeout_s: float = 30.0,
    kubeconfig: Path | None = None,
    open_incidents: int = 0,
) -> LatencyResult:
    """Time `incidents` rollbacks; on the cluster of `kubeconfig`, or on a local control plane started here."""
    if kubeconfig is not None:
        return await _run_on_cluster(kubeconfig, incidents, work_dir, per_incident_timeout_s, open_incidents)
    # Imported here: the cluster package is only needed when the bench brings its own cluster.
    from devstack.cluster.local import LocalCluster

    cluster = LocalCluster(work_dir / "cluster")
    await asyncio.to_thread(cluster.start, 300.0)
    try:
        return await _run_on_cluster(
            cluster.kubeconfig, incidents, work_dir, per_incident_timeout_s, open_incidents
        )
    finally:
        await asyncio.to_thread(cluster.stop)


async def _run_on_cluster(
    kubeconfig: Path, incidents: int, work_dir: Path, per_incident_timeout_s: float, open_incidents: int
) -> LatencyResult:
    api_client = kube_config.new_client_from_config(config_file=str(kubeconfig))
    apps, core = kube_client.AppsV1Api(api_client), kube_client.CoreV1Api(api_client)
    prefix = f"{NAMESPACE_PREFIX}-{uuid.uuid4().hex[:6]}"
    namespaces = [f"{prefix}-{index:03d}" for index in range(incidents)]
    floor_namespace = f"{prefix}-floor"
    await asyncio.to_thread(prepare_deployments, apps, core, [*namespaces, floor_namespace])
    runbook_dir = work_dir / "runbooks"
    runbook_dir.mkdir(parents=True, exist_ok=True)
    (runbook_dir / "latency-bench.yaml").write_text(RUNBOOK, encoding="utf-8")
    background = background_run_id()
    env = {
        "BACKOUT_KUBECONFIG": str(kubeconfig),
        "BACKOUT_RUNBOOK_DIR": str(runbook_dir),
        "BACKOUT_ALLOWED_NAMESPACES": ",".join([*namespaces, bench_namespace(background)]),
        "BACKOUT_INCIDENT_SETTLE_S": "0",
        # The background incidents stay open while the bench runs, however long opening them takes.
        "BACKOUT_INCIDENT_COOLDOWN_S": "7200",
    }
    stack = SpawnedStack(state_dir=work_dir / "backout", extra_env=env)
    try:
        await asyncio.to_thread(stack.start)
        return await _measure(
            stack, apps, namespaces, floor_namespace, per_incident_timeout_s, open_incidents, background
        )
    finally:
        await asyncio.to_thread(stack.stop)
        for namespace in [*namespaces, floor_namespace]:
            try:
                await asyncio.to_thread(core.delete_namespace, namespace)
            except ApiException:
                pass
        api_client.close()


async def _measure(
    stack: SpawnedStack,
    apps: kube_client.AppsV1Api,
    namespaces: list[str],
    floor_namespace: str,
    per_incident_timeout_s: float,
    open_incidents: int,
    background_run: str,
) -> LatencyResult:
    run_id = uuid.uuid4().hex[:8]
    headers = auth_headers(stack.token)
    watch = RollbackWatch(apps)
    watch.start()
    latencies: list[float] = []
    workflow_floor_s: list[float] = []
    patch_floor_s: list[float] = []
    rolled_back_ids: list[str] = []
    timed: dict[str, tuple[float, float]] = {}
    slowest: tuple[float, str] | None = None
    problems: list[str] = []
    background: OpenIncidents | None = None
    async with (
        httpx.AsyncClient(
            base_url=stack.url, timeout=30, trust_env=False, headers=auth_headers(stack.operator_token)
        ) as http,
        WorkflowFloor(stack.temporal_address) as workflow_floor,
    ):
        if open_incidents:
            background = await open_background(
                http, stack.token, open_incidents, background_run, 16, RetryPolicy()
            )
        load = Load.now()
        # The deploy pipeline reports each change, as it would in production.
        changed_at = datetime.now(UTC) - timedelta(seconds=30)
        for namespace in namespaces:
            response = await http.post(
                "/v1/changes", json=_change(namespace, changed_at), headers=auth_headers(stack.reporter_token)
            )
            if response.status_code >= 300:
                raise BenchError(
                    f"POST /v1/changes answered HTTP {response.status_code}: {response.text[:300]}"
                )

        async def sample_floor() -> None:
            workflow_floor_s.append(await workflow_floor.sample())
            patch_floor_s.extend(
                await asyncio.to_thread(patch_floor, apps, floor_namespace, SERVICE, 1, len(patch_floor_s))
            )

        for namespace in namespaces:
            seen = watch.arm(namespace)
            sent_wall, started = time.time(), time.perf_counter()
            response = await http.post(
                "/v1/alerts/alertmanager", json=_notification(namespace, run_id), headers=headers
            )
            if response.status_code >= 300:
                problems.append(f"{namespace}: webhook answered HTTP {response.status_code}")
                continue
            incident_id = response.json().get("incident_id")
            if not await asyncio.to_thread(seen.wait, per_incident_timeout_s):
                why = await _why_not(http, incident_id)
                problems.append(f"{namespace}: no rollback within {per_incident_timeout_s:.0f}s ({why})")
                if len(problems) >= 3:
                    problems.append("stopped after 3 incidents without a rollback")
                    break
                continue
            latencies.append(watch.seen_at[namespace] - started)
            if incident_id:
                rolled_back_ids.append(incident_id)
                timed[incident_id] = (sent_wall, sent_wall + latencies[-1])
                if slowest is None or latencies[-1] > slowest[0]:
                    slowest = (latencies[-1], incident_id)
                await _settled(http, incident_id, per_incident_timeout_s)
            await sample_floor()
        while len(workflow_floor_s) < MIN_FLOOR_SAMPLES:
            await sample_floor()
        load = load.ended()
        states = await _incident_states(http, set(namespaces))
        slowest_timeline = await _timeline_until_rollback(http, slowest[1]) if slowest else []
        step_means = await _step_means(http)
        memory = await read_memory(http)
        if background is not None:
            background = await still_open(http, background)
    watch.stop()
    paths, phases = await _paths_to_patch(stack.temporal_address, rolled_back_ids, timed)
    return _result(
        namespaces, latencies, workflow_floor_s, patch_floor_s, problems, load, memory, background, paths
    ).model_copy(
        update={
            "incident_states": states,
            "step_mean_ms": step_means,
            "slowest": slowest_timeline,
            "phases": phases,
        }
    )


def _result(
    namespaces: list[str],
    latencies: list[float],
    workflow_floor_s: list[float],
    patch_floor_s: list[float],
    problems: list[str],
    load: Load,
    memory: Memory,
    background: OpenIncidents | None,
    paths: list[PathToPatch],
) -> LatencyResult:
    floor_p50 = (_ms(workflow_floor_s, 0.5) or 0.0) + (_ms(patch_floor_s, 0.5) or 0.0)
    floor_p99 = (_ms(workflow_floor_s, 0.99) or 0.0) + (_ms(patch_floor_s, 0.99) or 0.0)
    p50, p99 = _ms(latencies, 0.5), _ms(latencies, 0.99)
    misses: list[str] = []
    complete = p50 is not None and p99 is not None and len(latencies) == len(namespaces)
    if complete and p50 is not None and p99 is not None:
        if p99 >= TARGET_P99_MS:
            misses.append(f"p99 {p99} ms is not under {TARGET_P99_MS:.0f} ms")
        if p50 > TARGET_P50_RATIO * floor_p50:
            misses.append(f"p50 is {p50 / floor_p50:.2f}x the floor (target {TARGET_P50_RATIO}x)")
        if p99 > TARGET_P99_RATIO * floor_p99:
            misses.append(f"p99 is {p99 / floor_p99:.2f}x the floor (target {TARGET_P99_RATIO}x)")
    return LatencyResult(
        incidents=len(namespaces),
        rolled_back=len(latencies),
        p50_ms=p50,
        p99_ms=p99,
        max_ms=round(max(latencies) * 1000, 2) if latencies else None,
        first_ms=round(latencies[0] * 1000, 2) if latencies else None,
        floor_workflow_p50_ms=_ms(workflow_floor_s, 0.5),
        floor_workflow_p99_ms=_ms(workflow_floor_s, 0.99),
        floor_patch_p50_ms=_ms(patch_floor_s, 0.5),
        floor_patch_p99_ms=_ms(patch_floor_s, 0.99),
        floor_p50_ms=round(floor_p50, 2),
        floor_p99_ms=round(floor_p99, 2),
        ratio_p50=round(p50 / floor_p50, 2) if p50 is not None and floor_p50 else None,
        ratio_p99=round(p99 / floor_p99, 2) if p99 is not None and floor_p99 else None,
        targets_met=not misses if complete else None,
        target_misses=misses,
        paths_to_patch=paths,
        load=load,
        memory=memory,
        open_incidents=background,
        ok=not problems,
        problems=problems,
    )
