"""Issue 12, finding "Errors lose their meaning": on the main of the issue `raise classify(exc)
from exc` returned the same exception, so an error became its own cause, a Kubernetes error turned
into "maximum recursion depth exceeded" and lost non_retryable (8 useless retries); `config show`
and timeline notes printed credentials embedded in URLs; backout's history copies of Secrets
lingered unowned."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.context import build_bundle
from activities.kube import history
from activities.kube.activities import KubeActivities
from activities.kube.client import KubeApis
from config import EvidenceQuery, Settings
from config.redact import RedactingFilter
from incidents.key import IncidentKey
from incidents.models import ContextRequest, IncidentInput
from incidents.remediation import RemediationRequest
from tests.security.probe_workflow import RemediateProbe
from workflows.state import IncidentState

pytestmark = [pytest.mark.temporal]

SECRET = "s3cret-Pa55word"


async def test_a_non_retryable_error_stays_non_retryable_with_its_message(
    temporal_client: Client, backout_settings: Settings, tmp_path: Path
) -> None:
    """The remediate activity on a real worker, its kubeconfig missing: one attempt, the reason kept."""
    settings = backout_settings.model_copy(update={"kubeconfig": tmp_path / "no-such.kubeconfig"})
    request = RemediationRequest(
        incident_id="inc", operation="rollback", target_type="deployment", name="web", namespace="prod"
    )
    queue = f"security-errors-{uuid.uuid4().hex[:8]}"
    async with Worker(
        temporal_client,
        task_queue=queue,
        workflows=[RemediateProbe],
        activities=[KubeActivities(settings).remediate],
    ):
        failure = await temporal_client.execute_workflow(
            RemediateProbe.run,
            request,
            id=f"probe-{uuid.uuid4().hex}",
            task_queue=queue,
        )
    assert failure is not None
    assert failure.non_retryable and failure.type == "KubeConfigMissing", failure
    assert "does not exist" in failure.message and "recursion" not in failure.message
    assert failure.retry_state == "NON_RETRYABLE_FAILURE", failure


def test_config_show_masks_credentials_in_urls(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BACKOUT_")}
    env.update(
        {
            "BACKOUT_STATE_DIR": str(tmp_path),
            "BACKOUT_PROMETHEUS_URL": f"https://reader:{SECRET}@prometheus.example:9090",
            "BACKOUT_WEBHOOK_URL": f"https://hooks.example/incoming?token={SECRET}&channel=ops",
            "BACKOUT_LLM_ENDPOINT": f"https://{SECRET}@llm.example/v1",
            "BACKOUT_LLM_MODEL": "judge",
            "BACKOUT_EVIDENCE_QUERIES": json.dumps([{"name": "up", "query": "up"}]),
            "BACKOUT_OPERATOR_TOKEN": "operator-" + SECRET,
        }
    )
    shown = subprocess.run(
        [sys.executable, "-m", "worker.cli", "config", "show", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert SECRET not in shown, shown
    values = json.loads(shown)
    assert values["prometheus_url"] == "https://reader:****@prometheus.example:9090"
    assert values["webhook_url"] == "https://hooks.example/incoming?token=****&channel=ops"
    assert values["operator_token"] == "********"


def test_timeline_notes_and_logs_mask_credentials_in_urls(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        state_dir=tmp_path,
        allowed_namespaces=["prod"],
        prometheus_url=f"http://reader:{SECRET}@127.0.0.1:1",  # nothing listens: the query fails
        evidence_queries=[EvidenceQuery(name="error_rate", query='up{service="{service}"}')],
        prometheus_timeout_s=1.0,
    )
    now = datetime.now(UTC)
    request = ContextRequest(
        incident_id="i", service="rag-api", namespace="prod", source="alertmanager", detected_at=now
    )
    notes = build_bundle(settings, request, now).notes
    assert notes and all(SECRET not in note for note in notes), notes
    # Whatever a step reports, the timeline masks it.
    state = IncidentState.opened(
        IncidentInput(incident_id="i", key=IncidentKey(namespace="prod", group="g"), source="alertmanager"),
        now,
    )
    state.log(now, "error", "notify", f"POST https://bot:{SECRET}@chat.example/api failed")
    assert SECRET not in state.view.timeline[-1].message
    assert "https://bot:****@chat.example/api" in state.view.timeline[-1].message
    # And so do the processes' logs (backout up installs the filter on every handler).
    logger = logging.getLogger("backout.security-test")
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    record = logger.makeRecord(
        logger.name, logging.WARNING, __file__, 1, "reached %s", (f"http://u:{SECRET}@h/",), None
    )
    assert handler.filter(record) and SECRET not in record.getMessage()


@pytest.mark.kube
def test_history_copies_of_a_secret_are_owned_by_it_and_rotate(
    kube_apis: KubeApis, kube_namespace: str
) -> None:
    kube_apis.core.create_namespaced_secret(
        kube_namespace, {"metadata": {"name": "api-key"}, "data": {"k": "MQ=="}}
    )
    for version in range(2, 10):
        history.record_now(kube_apis, kube_namespace)
        kube_apis.core.patch_namespaced_secret("api-key", kube_namespace, {"stringData": {"k": str(version)}})
    history.record_now(kube_apis, kube_namespace)
    original = kube_apis.core.read_namespaced_secret("api-key", kube_namespace)
    copies = kube_apis.core.list_namespaced_secret(
        kube_namespace, label_selector=history.HISTORY_OF_LABEL
    ).items
    assert len(copies) == history.KEEP_SECRET_VERSIONS == 5, [c.metadata.name for c in copies]
    for copy in copies:
        [owner] = copy.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid) == ("Secret", "api-key", original.metadata.uid)
    kube_apis.core.delete_namespaced_secret("api-key", kube_namespace)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        left = kube_apis.core.list_namespaced_secret(
            kube_namespace, label_selector=history.HISTORY_OF_LABEL
        ).items
        if not left:
            return
        time.sleep(0.5)
    raise AssertionError(f"copies outlived their Secret: {[c.metadata.name for c in left]}")
