"""Opening and joining incidents (the one place that talks signal-with-start) and the activity other
workflows use to do it (a golden-set regression opens or joins an incident like an alert does).

The API and the worker share this code; the workflow is started by its registered name, so no
activity imports a workflow.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from activities.paging.channels import enabled_channels
from config import Settings
from incidents.key import IncidentKey
from incidents.models import IncidentInput, IncidentSignal, IncidentView, OpenIncidentRequest

INCIDENT_WORKFLOW = "IncidentWorkflow"  # workflows.incident.IncidentWorkflow's registered name


class IncidentBehaviour:
    """Knobs copied into every new incident's input (so replays see fixed values)."""

    def __init__(self, settings: Settings, temporal_ui_url: str | None = None) -> None:
        self.settings = settings
        self.temporal_ui_url = temporal_ui_url

    def input_for(self, key: IncidentKey, source: str) -> IncidentInput:
        s = self.settings
        target = s.eval_manifests.get(f"{key.namespace or ''}/{key.service or ''}")
        return IncidentInput(
            incident_id=key.workflow_id(),
            key=key,
            source=source,
            settle_s=s.incident_settle_s,
            cooldown_s=s.incident_cooldown_s,
            lookback_s=s.lookback_s,
            runbook_dir=str(s.runbook_dir) if s.runbook_dir else None,
            eval_manifest=str(target.manifest.resolve()) if target else None,
            eval_endpoint=target.endpoint if target else None,
            public_url=s.public_url,
            temporal_ui_url=self.temporal_ui_url,
            channels=enabled_channels(s),
            approval_recheck_s=s.approval_recheck_s,
        )


async def open_or_join(
    client: Client, behaviour: IncidentBehaviour, request: OpenIncidentRequest
) -> WorkflowHandle[Any, IncidentView]:
    """Signal-with-start with USE_EXISTING: storms, HA pairs and retries all land in one run."""
    params = behaviour.input_for(request.key, request.signal.source)
    return await client.start_workflow(
        INCIDENT_WORKFLOW,
        params,
        result_type=IncidentView,
        id=params.incident_id,
        task_queue=behaviour.settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal="add_signal",
        start_signal_args=[request.signal],
        memo={
            "state": "open",
            "service": request.key.service,
            "namespace": request.key.namespace,
            "source": request.signal.source,
            "group": request.key.group,
        },
    )


async def signal_if_open(client: Client, key: IncidentKey, signal: IncidentSignal) -> bool:
    """Deliver a signal to a running incident only (resolved alerts never open one)."""
    handle = client.get_workflow_handle(key.workflow_id())
    try:
        await handle.signal("add_signal", signal)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def workflow_pollers(client: Client, task_queue: str) -> int:
    """How many workers polled the task queue for workflow tasks recently (Temporal keeps a few minutes)."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(response.pollers)


class IncidentActivities:
    """Opening incidents from inside other workflows, with the worker's settings."""

    def __init__(self, settings: Settings, temporal_ui_url: str | None = None) -> None:
        self.behaviour = IncidentBehaviour(settings, temporal_ui_url)

    @activity.defn(name="open_or_join_incident")
    async def open_or_join_incident(self, request: OpenIncidentRequest) -> str:
        handle = await open_or_join(activity.client(), self.behaviour, request)
        return handle.id
