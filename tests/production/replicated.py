"""Two `backout api` processes behind one loopback address and three `backout worker` processes on
Temporal on PostgreSQL, with the local control plane and the PagerDuty and Slack receivers: the
chart's topology on one machine (devstack.replicas), for the many-replica tests."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.client import Client

from activities.kube import guards
from activities.kube.client import KubeApis
from activities.paging.channels.pagerduty import dedup_key_for
from config import Settings
from devstack.bench.payloads import Notification
from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.slack import SlackReceiver
from devstack.replicas import ReplicaSet
from devstack.temporal_sql import TemporalSqlState, store_url
from incidents.models import IncidentView
from tests.fixtures.temporal import settings_env, unique_name
from tests.kube.helpers import create_deployment, set_image
from tests.paging.real_incident import RUNBOOKS as PAGING_RUNBOOKS
from tests.pipeline.payloads import alert, notification
from worker.temporal_client import connect

RUNBOOKS = Path(__file__).parent / "runbooks"
SENDER_TOKEN = "sender-token-for-the-replica-tests"
REPORTER_TOKEN = "reporter-token-for-the-replica-tests"
DRILL = "ProdDrill"  # tests/production/runbooks/prod-drill.yaml: roll back at once
APPROVAL_DRILL = "ApprovalDrill"  # tests/paging/runbooks/approve.yaml: a human approves first


def runbook_dir(directory: Path) -> Path:
    """The drill runbooks of tests/production and the approval runbook of tests/paging."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(RUNBOOKS / "prod-drill.yaml", directory / "prod-drill.yaml")
    shutil.copy(PAGING_RUNBOOKS / "approve.yaml", directory / "approve.yaml")
    return directory


def replica_settings(temporal: TemporalSqlState, base: Settings, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "temporal_address": temporal.address,
        "temporal_namespace": temporal.namespace,
        "task_queue": unique_name("replicas"),
        "sender_token": SecretStr(SENDER_TOKEN),
        "reporter_token": SecretStr(REPORTER_TOKEN),
        "database_url": SecretStr(store_url(temporal)),
        "allow_anonymous_loopback": False,
        "max_rollbacks_per_namespace_per_hour": 100,
        **overrides,
    }
    return base.model_copy(update=values)


@dataclass
class Replicated:
    replicas: ReplicaSet
    client: Client
    settings: Settings
    apis: KubeApis
    namespace: str
    slack: SlackReceiver
    pagerduty: PagerDutyReceiver

    # --- the cluster ---------------------------------------------------------------------------

    async def bad_deploys(self, services: Iterable[str]) -> None:
        """Each service at revision 1 (v1), then revision 2 (v2): the culprit."""

        def one(service: str) -> None:
            create_deployment(self.apis, self.namespace, service, f"{service}:v1", replicas=1)
            set_image(self.apis, self.namespace, service, f"{service}:v2", "deploy v2")

        await asyncio.gather(*(asyncio.to_thread(one, service) for service in services))

    def rollbacks_logged(self) -> Counter[str]:
        """Applied rollbacks per target in the namespace's action log (what backout did, as the cluster keeps it)."""
        return Counter(
            entry.target
            for entry in guards.read_action_log(self.apis, self.namespace)
            if entry.operation == "rollback" and entry.result.applied
        )

    # --- alerts --------------------------------------------------------------------------------

    def storm(self, services: list[str], batches: int, alertname: str = DRILL) -> list[Notification]:
        """Every service's group growing by one alert per batch, each notification sent by both
        Alertmanager replicas; batch-major, the twins racing within a batch."""
        rng = random.Random(11)
        planned: list[Notification] = []
        starts = "2026-12-01T08:00:00Z"
        for batch in range(batches):
            in_batch = []
            for group, service in enumerate(services):
                alerts = [
                    alert(alertname, service, self.namespace, starts_at=starts, extra={"instance": f"i{i}"})
                    for i in range(batch + 1)
                ]
                body = notification(alerts, group=service)
                for replica in range(2):
                    in_batch.append(
                        Notification(
                            group=group,
                            batch=batch,
                            replica=replica,
                            fingerprints=[a["fingerprint"] for a in alerts],
                            body={**body, "externalURL": f"http://alertmanager-{replica}:9093"},
                        )
                    )
            rng.shuffle(in_batch)
            planned += in_batch
        return planned

    def resolved(self, service: str, instances: int, alertname: str = DRILL) -> dict[str, Any]:
        starts = "2026-12-01T08:00:00Z"
        alerts = [
            alert(alertname, service, self.namespace, "resolved", starts, extra={"instance": f"i{i}"})
            for i in range(instances)
        ]
        return notification(alerts, group=service)

    def incident_id(self, service: str) -> str:
        body = notification([alert(DRILL, service, self.namespace)], group=service)
        from api.sources.alertmanager import AlertmanagerPayload

        return AlertmanagerPayload.model_validate(body).incident_key().workflow_id()

    # --- what came of it -----------------------------------------------------------------------

    async def runs_of(self, incident_id: str) -> int:
        """Workflow runs Temporal holds under the incident's id (one incident: one run)."""
        return len([w async for w in self.client.list_workflows(f"WorkflowId = '{incident_id}'")])

    async def view(self, incident_id: str) -> IncidentView:
        return await self.client.get_workflow_handle(incident_id).query("view", result_type=IncidentView)

    async def finished(self, incident_id: str, timeout_s: float) -> IncidentView:
        result = await asyncio.wait_for(self.client.get_workflow_handle(incident_id).result(), timeout_s)
        return IncidentView.model_validate(result)

    def pages(self, incident_id: str) -> list[str]:
        """PagerDuty event actions the receiver got for the incident, in order."""
        key = dedup_key_for(incident_id)
        return [action for action, dedup in self.pagerduty.actions() if dedup == key]


def sent_deliveries(views: Iterable[IncidentView], channel: str) -> Counter[str]:
    """Events each incident's record says it sent through `channel`, counted."""
    return Counter(
        record.event
        for view in views
        for record in view.deliveries
        if record.channel == channel and record.sent
    )


async def post(url: str, body: dict[str, Any], token: str = SENDER_TOKEN) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as http:
        return await http.post(
            "/v1/alerts/alertmanager", json=body, headers={"Authorization": f"Bearer {token}"}
        )


@contextlib.asynccontextmanager
async def replicated(
    settings: Settings,
    apis: KubeApis,
    namespace: str,
    slack: SlackReceiver,
    pagerduty: PagerDutyReceiver,
    log_dir: Path,
    api_count: int = 2,
    workers: int = 3,
) -> AsyncIterator[Replicated]:
    env = settings_env(settings)
    replicas = ReplicaSet(env, log_dir, apis=api_count, workers=workers)
    await asyncio.to_thread(replicas.start)
    try:
        client = await connect(settings, attempts=10)
        yield Replicated(replicas, client, settings, apis, namespace, slack, pagerduty)
    finally:
        await asyncio.to_thread(replicas.stop)


def unique_services(count: int, prefix: str = "svc") -> list[str]:
    tag = uuid.uuid4().hex[:4]
    return [f"{prefix}{index}-{tag}" for index in range(count)]
