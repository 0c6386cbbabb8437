"""Issue 12, finding "The namespace allow list guards only the remediation": on the main of the
issue an alert labelled with a namespace outside BACKOUT_ALLOWED_NAMESPACES opened an incident,
queried Prometheus and made backout write backout-history.* copies (of Secrets too) there; the
shipped RBAC bound cluster-wide writes on every Secret, ConfigMap and Deployment; an empty allow
list meant everywhere. Now the allow list is enforced at intake, context collection, history
recording and remediation, and the shipped RBAC makes the apiserver refuse the rest (403)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes.client import V1Namespace, V1ObjectMeta
from kubernetes.client.exceptions import ApiException
from temporalio.client import Client

from activities.context import build_bundle
from activities.kube import activities as kube_activities
from activities.kube.client import KubeApis
from activities.kube.history import HISTORY_OF_LABEL, run_history_recorder
from config import Settings, load_settings
from devstack.cluster.local import LocalCluster
from incidents.bundle import Change, RollbackHandle
from incidents.models import ContextRequest
from incidents.remediation import RemediationRequest
from tests.kube.helpers import create_deployment, current_images, set_image
from tests.kube.test_rbac import apply_worker_rbac, worker_identity
from tests.pipeline.payloads import alert, notification
from tests.security.conftest import ERROR_RATE, SENDER, RecordingPrometheus, SecureStack

pytestmark = [pytest.mark.temporal]


async def _incident_ids(client: Client, task_queue: str) -> set[str]:
    query = f'WorkflowType = "IncidentWorkflow" AND TaskQueue = "{task_queue}"'
    return {execution.id async for execution in client.list_workflows(query)}


async def test_an_alert_outside_the_allow_list_opens_nothing_and_queries_nothing(
    secure_stack: SecureStack,
) -> None:
    asked_before = len(secure_stack.prometheus.queries)
    outside = notification([alert(service="etcd", namespace="kube-system")], group="kube-system-etcd")
    async with secure_stack.http(SENDER) as http:
        answer = await http.post("/v1/alerts/alertmanager", json=outside)
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"] == "namespace_not_allowed"
        # A mixed notification delivers only the alerts backout may look at.
        mixed = notification(
            [
                alert(service="gw", namespace="prod"),
                alert(name="Other", service="gw", namespace="kube-system"),
            ],
            group="gw",
        )
        delivered = await http.post("/v1/alerts/alertmanager", json=mixed)
    assert delivered.status_code == 202 and delivered.json()["refused_namespaces"] == ["kube-system"]
    ids = await _incident_ids(secure_stack.client, secure_stack.settings.task_queue)
    assert not any("kube-system" in incident for incident in ids), ids
    await asyncio.sleep(1.0)  # the prod incident's context step may run; kube-system's never does
    queries = secure_stack.prometheus.queries[asked_before:]
    assert not any("kube-system" in q.query for q in queries), [q.query for q in queries]


def test_context_is_not_collected_outside_the_allow_list(tmp_path: Path) -> None:
    """An incident opened before the allow list was narrowed: no changes, no Prometheus query."""
    with RecordingPrometheus() as prometheus:
        settings = Settings(
            state_dir=tmp_path,
            allowed_namespaces=["prod"],
            prometheus_url=prometheus.url,
            evidence_queries=[ERROR_RATE],
        )
        now = datetime.now(UTC)
        request = ContextRequest(
            incident_id="i", service="etcd", namespace="kube-system", source="alertmanager", detected_at=now
        )
        result = build_bundle(settings, request, now)
        assert prometheus.queries == []
    assert result.bundle.changes == [] and result.bundle.metrics == []
    assert "outside the allow list" in result.notes[0]


@pytest.fixture
def two_namespaces(kube_apis: KubeApis, kube_namespace: str) -> Iterator[tuple[str, str]]:
    """The test's namespace (allowed) and a second one (not allowed), deleted afterwards."""
    other = f"{kube_namespace[:50]}-out"
    kube_apis.core.create_namespace(V1Namespace(metadata=V1ObjectMeta(name=other)))
    yield kube_namespace, other
    with contextlib.suppress(ApiException):
        kube_apis.core.delete_namespace(other)


@pytest.mark.kube
def test_history_is_recorded_only_in_allowed_namespaces(
    kube_cluster: LocalCluster,
    kube_apis: KubeApis,
    two_namespaces: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    allowed, outside = two_namespaces
    monkeypatch.setenv("BACKOUT_KUBECONFIG", str(kube_cluster.kubeconfig))
    settings = load_settings(allowed_namespaces=[allowed])
    for namespace in (outside, allowed):  # the outside one first: a sweep would reach it first
        kube_apis.core.create_namespaced_config_map(
            namespace, {"metadata": {"name": "prompts"}, "data": {"p": "1"}}
        )
        kube_apis.core.create_namespaced_secret(
            namespace, {"metadata": {"name": "api-key"}, "data": {"k": "MQ=="}}
        )
    stop = threading.Event()
    recorder = threading.Thread(target=run_history_recorder, args=(settings, stop, 2), daemon=True)
    recorder.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            copies = kube_apis.core.list_namespaced_secret(allowed, label_selector=HISTORY_OF_LABEL).items
            if copies:
                break
            time.sleep(0.2)
        assert copies, "the allowed namespace's Secret was recorded"
        elsewhere = [
            *kube_apis.core.list_namespaced_secret(outside, label_selector=HISTORY_OF_LABEL).items,
            *kube_apis.core.list_namespaced_config_map(outside, label_selector=HISTORY_OF_LABEL).items,
        ]
        assert elsewhere == [], [item.metadata.name for item in elsewhere]
    finally:
        stop.set()
        recorder.join(timeout=30)


@pytest.mark.kube
def test_a_rollback_handle_outside_the_changes_namespace_is_refused(
    kube_apis: KubeApis, two_namespaces: tuple[str, str], kube_settings: Settings
) -> None:
    """A change in one namespace whose handle names a Deployment in another: nothing is touched."""
    allowed, other = two_namespaces
    create_deployment(kube_apis, other, "payments", "payments:1")
    set_image(kube_apis, other, "payments", "payments:2")
    change = Change(
        id="reported-7",
        service="rag-api",
        namespace=allowed,
        kind="image",
        started_at=datetime.now(UTC),
        rollback=RollbackHandle(type="deployment", name="payments", namespace=other),
    )
    request = RemediationRequest(
        incident_id="inc",
        operation="rollback",
        target_type="deployment",
        name="payments",
        namespace=other,
        change=change,
    )
    result = kube_activities.remediate_now(kube_settings, request)
    assert result.outcome == "Failed" and not result.applied
    assert "only undone in its own namespace" in result.message
    assert current_images(kube_apis, other, "payments") == ["payments:2"]
    narrow = kube_settings.model_copy(update={"allowed_namespaces": [allowed]})
    outside = kube_activities.remediate_now(narrow, request.model_copy(update={"change": None}))
    assert outside.outcome == "Failed" and "not in the allow list" in outside.message


@pytest.mark.kube
def test_the_shipped_rbac_lets_the_worker_write_only_in_allowed_namespaces(
    kube_cluster: LocalCluster, kube_apis: KubeApis, two_namespaces: tuple[str, str]
) -> None:
    """Acceptance: the worker's ServiceAccount, bound only by deploy/rbac/ applied for the allowed
    namespace, cannot create a Secret in kube-system nor patch a Deployment elsewhere (403)."""
    allowed, outside = two_namespaces
    apply_worker_rbac(kube_apis, [allowed])
    for namespace in (allowed, outside):
        create_deployment(kube_apis, namespace, "web", "web:1")
    worker = worker_identity(kube_apis, kube_cluster)
    try:
        patch = {"spec": {"template": {"metadata": {"annotations": {"touched": "yes"}}}}}
        worker.apps.patch_namespaced_deployment("web", allowed, patch)  # allowed: 200
        refusals = {
            "create a Secret in kube-system": lambda: worker.core.create_namespaced_secret(
                "kube-system", {"metadata": {"name": "backout-history.secret.x.v1"}, "data": {"k": "MQ=="}}
            ),
            "patch a Deployment outside": lambda: worker.apps.patch_namespaced_deployment(
                "web", outside, patch
            ),
            "read Secrets outside": lambda: worker.core.list_namespaced_secret(outside),
            "list Secrets cluster-wide": lambda: worker.core.list_secret_for_all_namespaces(),
            "delete a Deployment it may patch": lambda: worker.apps.delete_namespaced_deployment(
                "web", allowed
            ),
        }
        for what, call in refusals.items():
            with pytest.raises(ApiException) as refused:
                call()
            assert refused.value.status == 403, what
    finally:
        worker.close()
    annotations = kube_apis.apps.read_namespaced_deployment("web", outside).spec.template.metadata.annotations
    assert not (annotations or {}).get("touched")
