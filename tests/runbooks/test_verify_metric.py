"""wait_verify.metric acts: recovery is verified with the alerts about that metric only.

Real: Temporal dev server, IncidentWorkflow, the runbook loader, the kube activities rolling back a
Deployment on the local control plane, the paging channels (unconfigured). Stand-ins only for
context and attribution (tests/runbooks/incident_runs.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from activities.kube.client import KubeApis
from config import Settings
from incidents.models import Alert, IncidentSignal, IncidentView
from tests.runbooks.incident_runs import run_incident
from tests.runbooks.test_shadow_workflow import _deploy_two_revisions
from worker.temporal_server import TemporalDevServer

pytestmark = [pytest.mark.kube, pytest.mark.temporal, pytest.mark.slow]

METRIC = "rag_retrieval_precision"
RUNBOOK = """\
name: verify-by-metric
mode: auto
match:
  alertnames: [RetrievalPrecisionLow]
start: roll_back
nodes:
  roll_back:
    actions:
      - rollback: {{kinds: [image]}}
      - wait_verify: {{duration: 0, timeout: 8{metric}}}
"""


def _alerts(now: datetime, about_status: str, other_status: str) -> list[Alert]:
    expr = "avg%28rag_retrieval_precision%7Bservice%3D%22chat%22%7D%29+%3C+0.8"
    return [
        Alert(
            fingerprint="about",
            status=about_status,  # type: ignore[arg-type]
            labels={"alertname": "RetrievalPrecisionLow", "severity": "critical"},
            starts_at=now,
            generator_url=f"http://prometheus:9090/graph?g0.expr={expr}&g0.tab=1",
        ),
        Alert(
            fingerprint="other",
            status=other_status,  # type: ignore[arg-type]
            labels={"alertname": "GatewayCpuHigh", "severity": "warning"},
            starts_at=now,
            generator_url="http://prometheus:9090/graph?g0.expr=cpu_usage+%3E+0.9&g0.tab=1",
        ),
    ]


async def _incident(
    server: TemporalDevServer, settings: Settings, runbook_dir: Path, namespace: str, name: str
) -> IncidentView:
    now = datetime.now(UTC)
    opening = IncidentSignal(source="alertmanager", received_at=now, alerts=_alerts(now, "firing", "firing"))
    # The alert about the metric clears; the unrelated one keeps firing.
    cleared = IncidentSignal(
        source="alertmanager", received_at=now, alerts=_alerts(now, "resolved", "firing")
    )
    return await run_incident(server, settings, runbook_dir, namespace, name, opening, after_rollout=cleared)


async def test_a_verify_step_naming_a_metric_waits_only_for_the_alerts_about_it(
    temporal_server: TemporalDevServer,
    kube_settings: Settings,
    kube_apis: KubeApis,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    settings = kube_settings.model_copy(update={"state_dir": tmp_path / "state"})
    for variant, metric in (("metric", f", metric: {METRIC}"), ("every", "")):
        (tmp_path / variant).mkdir()
        (tmp_path / variant / "runbook.yaml").write_text(RUNBOOK.format(metric=metric))

    _deploy_two_revisions(kube_apis, kube_namespace, "chat-metric")
    view = await _incident(temporal_server, settings, tmp_path / "metric", kube_namespace, "chat-metric")
    assert view.state == "recovered", [entry.message for entry in view.timeline]
    [verified] = [record for record in view.actions if record.action == "verify_symptom"]
    assert verified.outcome == "Successful"
    assert any(f"verifying with the alerts about {METRIC}" in entry.message for entry in view.timeline)

    # Control: without the metric every alert must clear, and the unrelated one does not.
    _deploy_two_revisions(kube_apis, kube_namespace, "chat-every")
    view = await _incident(temporal_server, settings, tmp_path / "every", kube_namespace, "chat-every")
    assert view.state == "needs_human"
    assert [record.outcome for record in view.actions if record.action == "verify_symptom"] == ["Failed"]
