"""`backout bench latency`: webhook receipt -> rollback patch accepted by the apiserver, and its floor.

Real parts only: the local control plane (cluster/), a private `backout up` (embedded
Temporal, worker, API) with an auto-mode rollback runbook and no settle wait, and the
change API. Each incident is timed from just before its webhook POST until a watch on
the Deployments sees the rolled-back template (an upper bound on "patch accepted").
Each incident gets its own namespace holding one Deployment with one bad change, so the
bench times the response path, not the attribution of look-alike changes.
The floor (worker.bench.latency_parts) is measured in the same run.
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

from devstack.bench.latency_parts import (
    BAD_IMAGE,
    GOOD_IMAGE,
    SERVICE,
    RollbackWatch,
    patch_floor,
    prepare_deployments,
    workflow_floor,
)
from devstack.bench.runner import BenchError, auth_headers
from devstack.bench.stack import SpawnedStack

NAMESPACE_PREFIX = "backout-latency"
ALERTNAME = "BackoutLatencyBench"
TARGET_P99_MS = 1000.0
TARGET_FLOOR_RATIO = 3.0

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


class LatencyResult(BaseModel):
    bench: str = "latency"
    incidents: int
    rolled_back: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    floor_workflow_p50_ms: float | None
    floor_workflow_p99_ms: float | None
    floor_patch_p50_ms: float | None
    floor_patch_p99_ms: float | None
    floor_p50_ms: float | None
    floor_p99_ms: float | None
    ratio_p50: float | None
    ratio_p99: float | None
    target_p99_ms: float = TARGET_P99_MS
    target_ratio: float = TARGET_FLOOR_RATIO
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


async def run_latency(
    incidents: int, work_dir: Path, per_incident_timeout_s: float = 30.0, kubeconfig: Path | None = None
) -> LatencyResult:
    """Time `incidents` rollbacks; on the cluster of `kubeconfig`, or on a local control plane started here."""
    if kubeconfig is not None:
        return await _run_on_cluster(kubeconfig, incidents, work_dir, per_incident_timeout_s)
    # Imported here: the cluster package is only needed when the bench brings its own cluster.
    from devstack.cluster.local import LocalCluster

    cluster = LocalCluster(work_dir / "cluster")
    await asyncio.to_thread(cluster.start, 300.0)
    try:
        return await _run_on_cluster(cluster.kubeconfig, incidents, work_dir, per_incident_timeout_s)
    finally:
        await asyncio.to_thread(cluster.stop)


async def _run_on_cluster(
    kubeconfig: Path, incidents: int, work_dir: Path, per_incident_timeout_s: float
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
    env = {
        "BACKOUT_KUBECONFIG": str(kubeconfig),
        "BACKOUT_RUNBOOK_DIR": str(runbook_dir),
        "BACKOUT_ALLOWED_NAMESPACES": ",".join(namespaces),
        "BACKOUT_INCIDENT_SETTLE_S": "0",
    }
    stack = SpawnedStack(state_dir=work_dir / "backout", extra_env=env)
    try:
        await asyncio.to_thread(stack.start)
        return await _measure(stack, apps, namespaces, floor_namespace, per_incident_timeout_s)
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
) -> LatencyResult:
    run_id = uuid.uuid4().hex[:8]
    headers = auth_headers(stack.token)
    watch = RollbackWatch(apps)
    watch.start()
    latencies: list[float] = []
    slowest: tuple[float, str] | None = None
    problems: list[str] = []
    async with httpx.AsyncClient(
        base_url=stack.url, timeout=30, trust_env=False, headers=auth_headers(stack.operator_token)
    ) as http:
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
        for namespace in namespaces:
            seen = watch.arm(namespace)
            started = time.perf_counter()
            response = await http.post(
                "/v1/alerts/alertmanager", json=_notification(namespace, run_id), headers=headers
            )
            if response.status_code >= 300:
                problems.append(f"{namespace}: webhook answered HTTP {response.status_code}")
                continue
            if not await asyncio.to_thread(seen.wait, per_incident_timeout_s):
                why = await _why_not(http, response.json().get("incident_id"))
                problems.append(f"{namespace}: no rollback within {per_incident_timeout_s:.0f}s ({why})")
                if len(problems) >= 3:
                    problems.append("stopped after 3 incidents without a rollback")
                    break
                continue
            latencies.append(watch.seen_at[namespace] - started)
            incident_id = response.json().get("incident_id")
            if incident_id and (slowest is None or latencies[-1] > slowest[0]):
                slowest = (latencies[-1], incident_id)
        states = await _incident_states(http, set(namespaces))
        slowest_timeline = await _timeline_until_rollback(http, slowest[1]) if slowest else []
        step_means = await _step_means(http)
    watch.stop()
    samples = max(10, len(namespaces))
    workflow_floor_s = await workflow_floor(stack.temporal_address, samples)
    patch_floor_s = await asyncio.to_thread(patch_floor, apps, floor_namespace, SERVICE, samples)
    floor_p50 = (_ms(workflow_floor_s, 0.5) or 0.0) + (_ms(patch_floor_s, 0.5) or 0.0)
    floor_p99 = (_ms(workflow_floor_s, 0.99) or 0.0) + (_ms(patch_floor_s, 0.99) or 0.0)
    p50, p99 = _ms(latencies, 0.5), _ms(latencies, 0.99)
    if p50 is not None and p99 is not None and len(latencies) == len(namespaces):
        if p99 >= TARGET_P99_MS:
            problems.append(f"p99 {p99} ms is not under {TARGET_P99_MS:.0f} ms")
        if p99 > TARGET_FLOOR_RATIO * floor_p99:
            problems.append(f"p99 is {p99 / floor_p99:.1f}x the floor (target {TARGET_FLOOR_RATIO:.0f}x)")
    return LatencyResult(
        incidents=len(namespaces),
        rolled_back=len(latencies),
        p50_ms=p50,
        p99_ms=p99,
        max_ms=round(max(latencies) * 1000, 2) if latencies else None,
        floor_workflow_p50_ms=_ms(workflow_floor_s, 0.5),
        floor_workflow_p99_ms=_ms(workflow_floor_s, 0.99),
        floor_patch_p50_ms=_ms(patch_floor_s, 0.5),
        floor_patch_p99_ms=_ms(patch_floor_s, 0.99),
        floor_p50_ms=round(floor_p50, 2),
        floor_p99_ms=round(floor_p99, 2),
        ratio_p50=round(p50 / floor_p50, 2) if p50 is not None else None,
        ratio_p99=round(p99 / floor_p99, 2) if p99 is not None else None,
        incident_states=states,
        step_mean_ms=step_means,
        slowest=slowest_timeline,
        ok=not problems,
        problems=problems,
    )
