"""remediate's reads before its write (activities/kube/remediation.py): the action log and the
target at once, a fresh read after a 409, and a missing target failing as before. On the session's
real cluster, with the client's calls counted (a real apiserver hides the order of the reads)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from activities.kube import guards, ledger, remediation
from activities.kube.client import KubeApis
from config import Settings
from incidents.remediation import RemediationRequest
from tests.kube.helpers import create_deployment, current_images, first_call_meets, set_image

pytestmark = pytest.mark.kube


def _scale(namespace: str, replicas: int = 3, name: str = "web") -> RemediationRequest:
    return RemediationRequest(
        incident_id="inc-remediation-reads",
        operation="scale",
        target_type="deployment",
        name=name,
        namespace=namespace,
        replicas=replicas,
    )


def _counting(reads: list[str], call: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        reads.append(args[0] if args else kwargs.get("name", ""))
        return call(*args, **kwargs)

    return wrapper


def test_the_action_log_and_the_target_are_read_at_once(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    # Each first read waits for the other: made one after the other, neither gets past the barrier
    # (BrokenBarrierError after 10 s) and the remediation fails.
    meet = threading.Barrier(2, timeout=10)
    monkeypatch.setattr(
        kube_apis.core,
        "read_namespaced_config_map",
        first_call_meets(meet, kube_apis.core.read_namespaced_config_map),
    )
    monkeypatch.setattr(
        kube_apis.apps,
        "read_namespaced_deployment",
        first_call_meets(meet, kube_apis.apps.read_namespaced_deployment),
    )
    result = remediation.remediate(kube_apis, kube_settings, _scale(kube_namespace))
    assert result.applied, result.message
    assert kube_apis.apps.read_namespaced_deployment("web", kube_namespace).spec.replicas == 3


def test_a_conflicting_write_is_retried_from_a_fresh_read(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_deployment(kube_apis, kube_namespace, "web", "registry.local/web:1")
    patch = kube_apis.apps.patch_namespaced_deployment
    sent_versions: list[str] = []
    answers: list[int] = []

    def someone_writes_first(name: str, namespace: str, body: Any, **kwargs: Any) -> Any:
        if not sent_versions:
            # Another writer changes the Deployment between backout's read and its write.
            patch(name, namespace, {"metadata": {"annotations": {"team/touched": "yes"}}})
        sent_versions.append(body["metadata"]["resourceVersion"])
        try:
            return patch(name, namespace, body, **kwargs)
        except ApiException as exc:
            answers.append(exc.status)
            raise

    monkeypatch.setattr(kube_apis.apps, "patch_namespaced_deployment", someone_writes_first)
    result = remediation.remediate(kube_apis, kube_settings, _scale(kube_namespace))
    assert result.applied, result.message
    # The object read with the action log served the first attempt only: the retry read it afresh.
    assert answers == [409]
    assert len(sent_versions) == 2 and sent_versions[0] != sent_versions[1]
    deployment = kube_apis.apps.read_namespaced_deployment("web", kube_namespace)
    assert deployment.spec.replicas == 3
    assert deployment.metadata.annotations["team/touched"] == "yes"


def test_a_target_that_cannot_be_read_fails_as_before(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    monkeypatch.setattr(
        kube_apis.apps,
        "read_namespaced_deployment",
        _counting(reads, kube_apis.apps.read_namespaced_deployment),
    )
    with pytest.raises(ApiException) as raised:
        remediation.remediate(kube_apis, kube_settings, _scale(kube_namespace, name="absent"))
    assert raised.value.status == 404
    # The early read's 404 is left to the executor's own read, which raises it.
    assert reads == ["absent", "absent"]


def _rollback(namespace: str) -> RemediationRequest:
    return RemediationRequest(
        incident_id="inc-remediation-reads",
        operation="rollback",
        target_type="deployment",
        name="web",
        namespace=namespace,
    )


def _images_of_three_revisions(apis: KubeApis, namespace: str) -> None:
    create_deployment(apis, namespace, "web", "registry.local/web:1")
    set_image(apis, namespace, "web", "registry.local/web:2")
    set_image(apis, namespace, "web", "registry.local/web:3")


def test_a_rollback_lists_the_replica_sets_at_once_with_the_deployment_read(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _images_of_three_revisions(kube_apis, kube_namespace)
    # The Deployment's read and the ReplicaSets' list wait for each other: listing them after the
    # read (by the Deployment's selector) never gets past the barrier and the rollback fails.
    meet = threading.Barrier(2, timeout=10)
    lists: list[str] = []
    monkeypatch.setattr(
        kube_apis.apps,
        "read_namespaced_deployment",
        first_call_meets(meet, kube_apis.apps.read_namespaced_deployment),
    )
    list_replica_sets = first_call_meets(meet, kube_apis.apps.list_namespaced_replica_set)

    def counted_list(*args: Any, **kwargs: Any) -> Any:
        lists.append(kwargs.get("label_selector") or "")
        return list_replica_sets(*args, **kwargs)

    monkeypatch.setattr(kube_apis.apps, "list_namespaced_replica_set", counted_list)
    result = remediation.remediate(kube_apis, kube_settings, _rollback(kube_namespace))
    assert result.applied, result.message
    assert (result.from_version, result.to_version) == ("3", "2")
    assert lists == [""]  # the namespace's, once: no second list by the selector
    assert current_images(kube_apis, kube_namespace, "web") == ["registry.local/web:2"]


def test_a_replica_set_list_without_the_current_revision_is_listed_again(
    kube_apis: KubeApis, kube_namespace: str, kube_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _images_of_three_revisions(kube_apis, kube_namespace)
    list_replica_sets = kube_apis.apps.list_namespaced_replica_set
    lists: list[str] = []

    def as_before_the_last_rollout(*args: Any, **kwargs: Any) -> Any:
        # The list made with the Deployment's read, as if served just before the rollout to
        # revision 3 made its ReplicaSet: the template rolled away from would be unknown.
        lists.append(kwargs.get("label_selector") or "")
        listed = list_replica_sets(*args, **kwargs)
        if len(lists) == 1:
            listed.items = [rs for rs in listed.items if ledger.revision_of(rs) != 3]
        return listed

    monkeypatch.setattr(kube_apis.apps, "list_namespaced_replica_set", as_before_the_last_rollout)
    result = remediation.remediate(kube_apis, kube_settings, _rollback(kube_namespace))
    assert result.applied, result.message
    assert (result.from_version, result.to_version) == ("3", "2")
    assert current_images(kube_apis, kube_namespace, "web") == ["registry.local/web:2"]
    [third] = [rs for rs in list_replica_sets(kube_namespace).items if ledger.revision_of(rs) == 3]
    # The loop guard knows the template it rolled away from (never rolled forward to it again).
    [entry] = guards.read_action_log(kube_apis, kube_namespace)
    assert entry.rolled_away_from == third.metadata.labels["pod-template-hash"]
    assert lists == ["", "app=web"]  # the namespace's, then the Deployment's own afresh
