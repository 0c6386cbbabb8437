"""Running the real IncidentWorkflow for one runbook on a real Temporal server, with the real
runbook loader, kube activities and paging channels, and stand-ins for context and attribution
(one known Deployment change ranked first), so a test fixes exactly what the runbook sees."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.kube.activities import KubeActivities
from activities.paging.channels import CHANNELS
from activities.runbooks import load_runbooks_activity
from config import Settings
from incidents.bundle import (
    AttributionOutput,
    BundleIncident,
    Change,
    IncidentBundle,
    ModelInfo,
    RankedChange,
    RollbackHandle,
)
from incidents.key import IncidentKey
from incidents.models import (
    AttributedContext,
    ContextRequest,
    ContextResult,
    IncidentInput,
    IncidentSignal,
    IncidentView,
)
from worker.temporal_server import TemporalDevServer
from workflows.incident import IncidentWorkflow


def image_change(namespace: str, name: str) -> Change:
    """An image change of Deployment `name`, v1 to v2, undone by rolling back to revision 2."""
    return Change(
        id=f"chg-{name}-v2",
        service=name,
        namespace=namespace,
        kind="image",
        started_at=datetime.now(UTC),
        from_version=f"{name}:v1",
        to_version=f"{name}:v2",
        rollback=RollbackHandle(type="deployment", name=name, namespace=namespace, revision=2),
    )


def standin_context(request: ContextRequest, change: Change) -> ContextResult:
    """The stand-ins' context: `change` alone, on its service."""
    incident = BundleIncident(id=request.incident_id, detected_at=request.detected_at, service=change.service)
    return ContextResult(bundle=IncidentBundle(version=1, incident=incident, changes=[change]))


def standin_ranking(bundle: IncidentBundle, change: Change) -> AttributionOutput:
    """The stand-ins' ranking: `change` first, at p 0.9."""
    ranking = [RankedChange(change_id=change.id, probability=0.9, reasons=["stand-in"])]
    return AttributionOutput(
        incident_id=bundle.incident.id, ranking=ranking, model=ModelInfo(name="stand-in", version="1")
    )


def stand_ins(namespace: str, name: str) -> list[Callable[..., Any]]:
    """collect_context answers one image change of Deployment `name` (revision 2); attribute_bundle
    ranks it first; collect_and_attribute does both."""
    change = image_change(namespace, name)

    @activity.defn(name="collect_context")
    async def collect_context(request: ContextRequest) -> ContextResult:
        return standin_context(request, change)

    @activity.defn(name="attribute_bundle")
    async def attribute_bundle(bundle: IncidentBundle) -> AttributionOutput:
        return standin_ranking(bundle, change)

    @activity.defn(name="collect_and_attribute")
    async def collect_and_attribute(request: ContextRequest) -> AttributedContext:
        context = standin_context(request, change)
        return AttributedContext(context=context, attribution=standin_ranking(context.bundle, change))

    return [collect_context, attribute_bundle, collect_and_attribute]


def incident_params(namespace: str, name: str, runbook_dir: Path, **overrides: Any) -> IncidentInput:
    """An alertmanager incident of Deployment `name` with the runbooks of `runbook_dir`, no settle
    window and no cool-down (unless `overrides` say otherwise)."""
    values: dict[str, Any] = {
        "incident_id": f"inc-{uuid.uuid4().hex[:8]}",
        "key": IncidentKey(namespace=namespace, service=name, group=name),
        "source": "alertmanager",
        "settle_s": 0,
        "cooldown_s": 0,
        "runbook_dir": str(runbook_dir),
    }
    return IncidentInput(**{**values, **overrides})


async def start_incident(
    client: Client, queue: str, params: IncidentInput, opening: IncidentSignal
) -> WorkflowHandle[IncidentWorkflow, IncidentView]:
    """Signal-with-start the incident on `queue`, as the API does (a running run is joined)."""
    return await client.start_workflow(
        IncidentWorkflow.run,
        params,
        id=params.incident_id,
        task_queue=queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal="add_signal",
        start_signal_args=[opening],
    )


async def run_incident(
    server: TemporalDevServer,
    settings: Settings,
    runbook_dir: Path,
    namespace: str,
    name: str,
    opening: IncidentSignal,
    after_rollout: IncidentSignal | None = None,
) -> IncidentView:
    """The incident's final view. `after_rollout` is delivered once the workflow verified the rollout
    of its remediation (say, the alert resolving)."""
    client = await Client.connect(server.address, data_converter=pydantic_data_converter)
    queue = f"incident-{uuid.uuid4().hex[:8]}"
    kube = KubeActivities(settings)
    activities: list[Callable[..., Any]] = [
        *stand_ins(namespace, name),
        load_runbooks_activity,
        kube.remediate,
        kube.verify_rollout,
    ]
    activities += [channel(settings).notify for channel in CHANNELS.values()]  # unconfigured: Inconclusive
    async with Worker(client, task_queue=queue, workflows=[IncidentWorkflow], activities=activities):
        handle = await start_incident(client, queue, incident_params(namespace, name, runbook_dir), opening)
        if after_rollout is not None:
            for _ in range(600):
                view = await handle.query(IncidentWorkflow.view)
                if any(record.action == "verify_rollout" for record in view.actions):
                    break
                await asyncio.sleep(0.1)
            await handle.signal(IncidentWorkflow.add_signal, after_rollout)
        return await asyncio.wait_for(handle.result(), timeout=120)
