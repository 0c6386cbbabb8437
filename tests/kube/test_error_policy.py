"""How Kubernetes failures map onto Temporal's retry decisions (pure: no cluster needed)."""

from __future__ import annotations

import json

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from activities.kube.client import classify, retry_on_conflict


def _api_error(status: int, message: str) -> ApiException:
    error = ApiException(status=status, reason="reason")
    error.body = json.dumps({"kind": "Status", "message": message, "code": status})
    return error


def test_forbidden_is_final_and_names_the_missing_permission() -> None:
    message = (
        'deployments.apps "web" is forbidden: User "system:serviceaccount:backout:w" cannot patch resource'
    )
    error = classify(_api_error(403, message), "rollback deployment/demo/web")
    assert error.non_retryable and error.type == "KubeForbidden"
    assert message in error.message and "rollback deployment/demo/web" in error.message


@pytest.mark.parametrize("status", [400, 404, 422])
def test_bad_requests_are_final(status: int) -> None:
    assert classify(_api_error(status, "nope"), "x").non_retryable


@pytest.mark.parametrize("status", [429, 500, 503, 504])
def test_overload_and_server_errors_are_retried(status: int) -> None:
    error = classify(_api_error(status, "etcdserver: request timed out"), "x")
    assert not error.non_retryable and "etcdserver: request timed out" in error.message


def test_timeouts_and_refused_connections_are_retried() -> None:
    timeout = urllib3.exceptions.ReadTimeoutError(None, "/apis", "read timed out")  # type: ignore[arg-type]
    assert not classify(timeout, "x").non_retryable
    assert not classify(ConnectionRefusedError(111, "refused"), "x").non_retryable


def test_conflicts_are_retried_then_surface() -> None:
    calls: list[int] = []

    def always_conflicting() -> None:
        calls.append(1)
        raise _api_error(409, "the object has been modified")

    with pytest.raises(ApiException):
        retry_on_conflict(always_conflicting, attempts=3)
    assert len(calls) == 3
