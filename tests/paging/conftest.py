"""Shared data and servers for the paging tests: an incident report (its words written as the
workflow writes them), settings bound to the receivers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.kube.client import KubeApis
from config import Settings
from devstack.cluster.local import LocalCluster
from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.server import TlsFiles
from devstack.receivers.slack import SlackReceiver
from incidents.bundle import AttributionOutput, Change, ModelInfo, RankedChange, RollbackHandle
from incidents.models import ActionRecord, IncidentReport
from tests.fixtures.receivers import PD_TEAM_ROUTING_KEY, PD_TEST_ROUTING_KEY, SLACK_TEST_TOKEN
from worker.temporal_server import TemporalDevServer

if TYPE_CHECKING:
    from tests.paging.real_incident import RealStack
from workflows.summary import render_report

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
APPROVER = "U0ALICE01"
OUTSIDER = "U0MALLORY"
DETECTED = datetime(2026, 11, 27, 10, 5, tzinfo=UTC)

OWNERS_YAML = f"""
teams:
  ml-platform:
    pagerduty_routing_key: {PD_TEAM_ROUTING_KEY}
    slack_channel: "#ml-incidents"
    approvers: [{APPROVER}]
  search:
    slack_channel: "#search"
services:
  - {{service: rag-api, namespace: prod, team: ml-platform}}
  - {{service: retriever, team: search}}
namespaces:
  staging: search
"""


def make_report(
    incident_id: str = "incident-prod-rag-api-0123456789abcdef", **updates: object
) -> IncidentReport:
    changes = [
        Change(
            id="chg-17",
            service="retriever",
            namespace="prod",
            kind="corpus",
            started_at=DETECTED - timedelta(minutes=24),
            from_version="corpus-2026-11-20",
            to_version="corpus-2026-11-27",
            author="ingest-pipeline",
            description="nightly re-index",
            rollback=RollbackHandle(type="deployment", name="retriever", namespace="prod", revision=4),
        ),
        Change(
            id="chg-12",
            service="rag-api",
            namespace="prod",
            kind="image",
            started_at=DETECTED - timedelta(minutes=50),
            from_version="v1.4.0",
            to_version="v1.4.1",
            author="alice",
        ),
    ]
    report = IncidentReport(
        incident_id=incident_id,
        title="RagPrecisionLow on rag-api (prod)",
        state="open",
        service="rag-api",
        namespace="prod",
        source="alertmanager",
        severity="error",
        team="ml-platform",
        detected_at=DETECTED,
        labels={"alertname": "RagPrecisionLow", "severity": "error"},
        attribution=AttributionOutput(
            incident_id=incident_id,
            ranking=[
                RankedChange(
                    change_id="chg-17", probability=0.82, reasons=["started 24 min before the symptom"]
                ),
                RankedChange(change_id="chg-12", probability=0.11, reasons=["same service"]),
            ],
            model=ModelInfo(name="test", version="1"),
        ),
        changes=changes,
        links={"backout": "http://127.0.0.1:8080/v1/incidents/x", "temporal": "http://127.0.0.1:8233/x"},
    )
    return render_report(report.model_copy(update=updates))


def rollback_record(at: datetime | None = None) -> ActionRecord:
    return ActionRecord(
        at=at or DETECTED + timedelta(minutes=3),
        action="rollback",
        mode="auto",
        outcome="Successful",
        target="deployment/retriever",
        message="rolled back to revision 3",
        diff="- image: retriever:v2\n+ image: retriever:v1",
    )


@pytest.fixture
def owners_file(tmp_path: Path) -> Path:
    path = tmp_path / "owners.yaml"
    path.write_text(OWNERS_YAML, encoding="utf-8")
    return path


@pytest.fixture
def paging_settings(
    tmp_path: Path,
    owners_file: Path,
    receivers_tls: TlsFiles,
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        pagerduty_routing_key=PD_TEST_ROUTING_KEY,
        pagerduty_events_url=pagerduty_receiver.url,
        pagerduty_ca_file=receivers_tls.ca_file,
        slack_token=SLACK_TEST_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=f"{slack_receiver.url}/api/",
        slack_channel="#fallback",
        ownership_file=owners_file,
        kubeconfig=None,
    )


@pytest.fixture(scope="session")
async def paging_client(temporal_server: TemporalDevServer) -> Client:
    """A client of the suite's Temporal dev server (tests/fixtures/temporal.py)."""
    return await Client.connect(temporal_server.address, data_converter=pydantic_data_converter)


@pytest.fixture
async def stack(
    temporal_client: Client,
    backout_settings: Settings,
    kube_cluster: LocalCluster,
    kube_apis: KubeApis,
    kube_namespace: str,
    receivers_tls: TlsFiles,
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
    tmp_path: Path,
) -> AsyncIterator[RealStack]:
    """The real incident on real parts (tests/paging/real_incident.py), its worker running."""
    from tests.paging.real_incident import real_stack, stack_settings, write_owners

    settings = stack_settings(
        backout_settings, kube_cluster.kubeconfig, kube_namespace, write_owners(tmp_path), receivers_tls,
        pagerduty_receiver, slack_receiver,
    )  # fmt: skip
    async with real_stack(
        temporal_client, settings, kube_apis, kube_namespace, slack_receiver, pagerduty_receiver
    ) as running:
        yield running


PAGING_FIELDS = (
    "pagerduty_routing_key",
    "pagerduty_events_url",
    "pagerduty_ca_file",
    "slack_token",
    "slack_api_url",
    "slack_channel",
    "ownership_file",
)


def with_paging(settings: Settings, paging: Settings, **overrides: object) -> Settings:
    """`settings` with the paging channels and ownership of `paging` (the receivers')."""
    return settings.model_copy(
        update={**{name: getattr(paging, name) for name in PAGING_FIELDS}, **overrides}
    )
