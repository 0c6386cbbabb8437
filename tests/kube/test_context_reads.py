"""The apiserver calls of an incident's context (activities/context.py, ledger.list_changes): the
history objects listed once when the sweep before the listing recorded nothing, and the topology
and the action log read while the changes are listed. On the session's real cluster."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client import V1Deployment

from activities.context import build_bundle
from activities.kube import history, ledger, remediation
from activities.kube.client import KubeApis, shared_apis
from config import Settings
from incidents.models import ContextRequest, ContextResult
from incidents.remediation import RemediationRequest
from tests.kube.helpers import create_deployment, first_call_meets, set_image

pytestmark = pytest.mark.kube

HISTORY_SELECTOR = "backout.dev/history-kind=configmap"


def _counted(calls: Counter[str], name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[f"{name} {kwargs.get('label_selector') or ''}".strip()] += 1
        return call(*args, **kwargs)

    return wrapper


def _context_of(settings: Settings, namespace: str, incident_id: str) -> ContextResult:
    """The context of an incident of Deployment `web`, collected now; the cluster was read."""
    request = ContextRequest(
        incident_id=incident_id,
        service="web",
        namespace=namespace,
        source="alertmanager",
        detected_at=datetime.now(UTC),
    )
    result = build_bundle(settings, request, datetime.now(UTC))
    assert result.cluster_error is None, result.notes
    return result


def _edit(apis: KubeApis, namespace: str, value: str) -> None:
    apis.core.patch_namespaced_config_map("prompts", namespace, {"data": {"system": value}})


def test_the_history_is_listed_again_only_after_the_sweep_recorded_a_version(
    kube_apis: KubeApis, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube_apis.core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "prompts"}, "data": {"system": "v1"}}
    )
    since = datetime.now(UTC) - timedelta(hours=1)
    ledger.list_changes(kube_apis, [kube_namespace], since)  # records version 1
    _edit(kube_apis, kube_namespace, "v2")
    calls: Counter[str] = Counter()
    monkeypatch.setattr(
        kube_apis.core,
        "list_namespaced_config_map",
        _counted(calls, "list configmaps", kube_apis.core.list_namespaced_config_map),
    )
    recorded = ledger.list_changes(kube_apis, [kube_namespace], since)  # records version 2, lists again
    # The sweep's one list of every ConfigMap, then the history objects again after its write.
    assert calls == {"list configmaps": 1, f"list configmaps {HISTORY_SELECTOR}": 1}
    assert [change.to_version for change in recorded if change.kind == "config"] == ["2"]

    calls.clear()
    again = ledger.list_changes(kube_apis, [kube_namespace], since)  # nothing new: the sweep's list only
    assert calls == {"list configmaps": 1}
    assert [change.id for change in again] == [change.id for change in recorded]


def test_a_sweep_lists_each_kind_once_for_what_to_record_and_its_history(
    kube_apis: KubeApis, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube_apis.core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "prompts"}, "data": {"system": "v1"}}
    )
    kube_apis.core.create_namespaced_secret(
        kube_namespace, {"metadata": {"name": "keys"}, "data": {"k": "djE="}}
    )
    history.record_now(kube_apis, kube_namespace)  # version 1 of each
    _edit(kube_apis, kube_namespace, "v2")
    calls: Counter[str] = Counter()
    for method, name in (("list_namespaced_config_map", "configmaps"), ("list_namespaced_secret", "secrets")):
        monkeypatch.setattr(
            kube_apis.core, method, _counted(calls, f"list {name}", getattr(kube_apis.core, method))
        )
    swept = history.sweep(kube_apis, kube_namespace)
    assert calls == {"list configmaps": 1, "list secrets": 1}  # not a second list of their history
    # What it recorded and the history it found, told apart from the one list of each kind.
    assert [(version.name, version.version) for version in swept.recorded] == [("prompts", 2)]
    assert [item.metadata.name for item in swept.history["configmap"]] == ["backout-history.cm.prompts.v1"]
    assert [item.metadata.name for item in swept.history["secret"]] == ["backout-history.secret.keys.v1"]
    assert history.sweep(kube_apis, kube_namespace).recorded == []  # the new version is known: no copy


def test_the_topology_and_the_action_log_are_read_while_the_changes_are_listed(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    set_image(kube_apis, kube_namespace, "web", "registry.local/web:2")
    # In dry-run mode nothing is recorded, so no list of the ConfigMaps holds the action log: it is read.
    kube_settings = kube_settings.model_copy(update={"kube_dry_run": True})
    apis = shared_apis(kube_settings)
    # The action log read (topology side) and the ReplicaSet list (changes side) wait for each other:
    # made one after the other they never get past the barrier and the context has a cluster error.
    meet = threading.Barrier(2, timeout=10)
    monkeypatch.setattr(
        apis.core, "read_namespaced_config_map", first_call_meets(meet, apis.core.read_namespaced_config_map)
    )
    monkeypatch.setattr(
        apis.apps,
        "list_namespaced_replica_set",
        first_call_meets(meet, apis.apps.list_namespaced_replica_set),
    )
    result = _context_of(kube_settings, kube_namespace, "inc-context-reads")
    assert [change.to_version for change in result.bundle.changes] == ["registry.local/web:2"]


def test_the_replica_sets_are_listed_once_per_namespace_with_the_deployments(
    kube_apis: KubeApis, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("web", "chat", "rag"):
        create_deployment(kube_apis, kube_namespace, name, f"registry.local/{name}:1")
    set_image(kube_apis, kube_namespace, "chat", "registry.local/chat:2")
    calls: Counter[str] = Counter()
    # The two lists wait for each other: made one after the other, the listing fails at the barrier.
    meet = threading.Barrier(2, timeout=10)
    for api, method, name in (
        (kube_apis.apps, "list_namespaced_deployment", "deployments"),
        (kube_apis.apps, "list_namespaced_replica_set", "replica sets"),
    ):
        monkeypatch.setattr(api, method, _counted(calls, name, first_call_meets(meet, getattr(api, method))))
    since = datetime.now(UTC) - timedelta(hours=1)
    changes = ledger.list_changes(kube_apis, [kube_namespace], since, record_first=False)
    assert calls == {"deployments": 1, "replica sets": 1}  # not one ReplicaSet list per Deployment
    assert [(change.service, change.to_version) for change in changes] == [("chat", "registry.local/chat:2")]


def test_one_list_of_the_deployments_serves_the_changes_and_the_topology(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    kube_apis.apps.patch_namespaced_deployment(
        "web", kube_namespace, {"metadata": {"annotations": {"backout.dev/calls": "rag"}}}
    )
    set_image(kube_apis, kube_namespace, "web", "registry.local/web:2")
    apis = shared_apis(kube_settings)
    calls: Counter[str] = Counter()
    monkeypatch.setattr(
        apis.apps,
        "list_namespaced_deployment",
        _counted(calls, "list deployments", apis.apps.list_namespaced_deployment),
    )
    result = _context_of(kube_settings, kube_namespace, "inc-context-deployments")
    assert calls == {"list deployments": 1}  # not one for the ledger and one for the topology
    assert result.bundle.topology is not None
    assert result.bundle.topology.edges == [("web", "rag")]
    assert [change.to_version for change in result.bundle.changes] == ["registry.local/web:2"]


def test_the_gitops_owner_of_a_changed_deployment_is_read_from_the_listed_deployment(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    flux_labels = {
        "kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": kube_namespace,
    }
    kube_apis.apps.patch_namespaced_deployment("web", kube_namespace, {"metadata": {"labels": flux_labels}})
    set_image(kube_apis, kube_namespace, "web", "registry.local/web:2")
    apis = shared_apis(kube_settings)
    calls: Counter[str] = Counter()
    monkeypatch.setattr(
        apis.apps,
        "read_namespaced_deployment",
        _counted(calls, "read deployment", apis.apps.read_namespaced_deployment),
    )
    sanitize = apis.api_client.sanitize_for_serialization

    def noting_whole_deployments(obj: Any) -> Any:
        if isinstance(obj, V1Deployment):
            calls["whole deployment to JSON"] += 1
        return sanitize(obj)

    monkeypatch.setattr(apis.api_client, "sanitize_for_serialization", noting_whole_deployments)
    result = _context_of(kube_settings, kube_namespace, "inc-context-gitops-owner")
    # The ledger's list of the Deployments had it: no GET of it again, and only its metadata is read.
    assert calls == {}
    [change] = result.bundle.changes
    # Its Flux labels, read from the listed object, name the reconciler (which this cluster lacks).
    assert change.gitops is not None
    assert (change.gitops.tool, change.gitops.reconciler) == ("flux", f"Kustomization/{kube_namespace}/apps")


def test_the_action_log_is_taken_from_the_sweeps_list_of_the_config_maps(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    set_image(kube_apis, kube_namespace, "web", "registry.local/web:2")
    rollback = RemediationRequest(
        incident_id="inc-earlier",
        operation="rollback",
        target_type="deployment",
        name="web",
        namespace=kube_namespace,
    )
    assert remediation.remediate(kube_apis, kube_settings, rollback).applied  # one entry in the action log
    apis = shared_apis(kube_settings)
    calls: Counter[str] = Counter()
    for method, name in (
        ("read_namespaced_config_map", "read configmap"),
        ("list_namespaced_config_map", "list configmaps"),
    ):
        monkeypatch.setattr(apis.core, method, _counted(calls, name, getattr(apis.core, method)))
    result = _context_of(kube_settings, kube_namespace, "inc-context-action-log")
    assert calls == {"list configmaps": 1}  # the sweep's list had the action log: no read of it on its own
    assert result.recent_rollbacks == 1


def test_the_reads_run_on_threads_kept_for_the_next_collection(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    apis = shared_apis(kube_settings)
    readers: list[threading.Thread] = []
    list_replica_sets = apis.apps.list_namespaced_replica_set

    def noting_the_thread(*args: Any, **kwargs: Any) -> Any:
        readers.append(threading.current_thread())
        return list_replica_sets(*args, **kwargs)

    monkeypatch.setattr(apis.apps, "list_namespaced_replica_set", noting_the_thread)
    _context_of(kube_settings, kube_namespace, "inc-context-threads")
    [reader] = readers
    # Made at once with the Deployments' list, on a reader thread that outlives the collection
    # (a thread started for it would have been ended and joined by now).
    assert reader is not threading.main_thread()
    assert reader.is_alive()
