"""Kubernetes API access for backout: client construction and error classification.

Failure policy: 403 is not retryable and names the missing permission; 400/404/422 are
bad input; 409 is retried here with a fresh read; 429, 5xx and transport errors are
retryable and left to Temporal's retry policy.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from temporalio.exceptions import ApplicationError

from config import Settings

T = TypeVar("T")
CONFLICT_ATTEMPTS = 5
# Inside a pod the kubelet mounts the ServiceAccount's token and CA here. The override exists so
# tests can run the in-cluster path against a real apiserver with a token they minted.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SERVICE_ACCOUNT_DIR_ENV = "BACKOUT_SERVICE_ACCOUNT_DIR"


class KubeApis:
    """The typed API groups backout uses, sharing one ApiClient."""

    def __init__(self, api_client: client.ApiClient):
        self.api_client = api_client
        # Typed as Any: the generated models make every field Optional, which adds noise, not safety.
        self.core: Any = client.CoreV1Api(api_client)
        self.apps: Any = client.AppsV1Api(api_client)

    def close(self) -> None:
        self.api_client.close()


def service_account_dir() -> Path | None:
    """The mounted ServiceAccount when running in a pod (KUBERNETES_SERVICE_HOST and a token), else None."""
    directory = Path(os.environ.get(SERVICE_ACCOUNT_DIR_ENV) or SERVICE_ACCOUNT_DIR)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and (directory / "token").is_file():
        return directory
    return None


def in_cluster_identity(settings: Settings) -> Path | None:
    """The ServiceAccount to act as: only when no kubeconfig is named (setting or $KUBECONFIG)."""
    if settings.kubeconfig is not None or os.environ.get("KUBECONFIG"):
        return None
    return service_account_dir()


def kube_configured(settings: Settings) -> bool:
    """Whether backout has a cluster identity: a kubeconfig named, or the pod's ServiceAccount."""
    named = settings.kubeconfig is not None or bool(os.environ.get("KUBECONFIG"))
    return named or service_account_dir() is not None


def _pooled(configuration: client.Configuration, request_timeout_s: float) -> KubeApis:
    configuration.retries = False
    api_client = client.ApiClient(configuration)
    api_client.rest_client.pool_manager.connection_pool_kw["timeout"] = urllib3.Timeout(
        connect=5.0, read=request_timeout_s
    )
    return KubeApis(api_client)


def apis_in_cluster(directory: Path, request_timeout_s: float = 30.0) -> KubeApis:
    """A client authenticated as the pod's ServiceAccount; the client re-reads the token as the
    kubelet rotates it."""
    configuration = client.Configuration()
    config.incluster_config.InClusterConfigLoader(
        token_filename=str(directory / "token"), cert_filename=str(directory / "ca.crt")
    ).load_and_set(configuration)
    return _pooled(configuration, request_timeout_s)


def kubeconfig_path(settings: Settings) -> Path:
    if settings.kubeconfig is not None:
        return settings.kubeconfig
    from_env = os.environ.get("KUBECONFIG")
    if from_env:
        return Path(from_env.split(os.pathsep)[0])
    return Path.home() / ".kube" / "config"


def apis_from_kubeconfig(path: Path, request_timeout_s: float = 30.0) -> KubeApis:
    if not path.exists():
        raise ApplicationError(
            f"kubeconfig {path} does not exist (set BACKOUT_KUBECONFIG or KUBECONFIG; "
            "`backout cluster env` prints it for the local cluster)",
            type="KubeConfigMissing",
            non_retryable=True,
        )
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)
    return _pooled(configuration, request_timeout_s)


def apis_from_settings(settings: Settings) -> KubeApis:
    """A named kubeconfig (setting or $KUBECONFIG) wins; in a pod, its ServiceAccount; else ~/.kube/config."""
    in_cluster = in_cluster_identity(settings)
    if in_cluster is not None:
        return apis_in_cluster(in_cluster)
    return apis_from_kubeconfig(kubeconfig_path(settings))


_shared_lock = threading.Lock()
_shared: dict[str, tuple[int, KubeApis]] = {}


def shared_apis(settings: Settings) -> KubeApis:
    """One client per kubeconfig per process, rebuilt when the file changes (a rotated credential,
    a restarted local cluster). Activities reuse its pooled connections instead of paying a
    kubeconfig parse and a TLS handshake on every call. Callers must not close it."""
    in_cluster = in_cluster_identity(settings)
    if in_cluster is not None:  # the client refreshes the rotated token itself
        with _shared_lock:
            cached = _shared.get(str(in_cluster))
            if cached is None:
                cached = (0, apis_in_cluster(in_cluster))
                _shared[str(in_cluster)] = cached
            return cached[1]
    path = kubeconfig_path(settings)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return apis_from_kubeconfig(path)  # raises the error that names the missing file
    with _shared_lock:
        cached = _shared.get(str(path))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        # A replaced client is left to the garbage collector: another thread may still be using it.
        apis = apis_from_kubeconfig(path)
        _shared[str(path)] = (stamp, apis)
        return apis


def apis_with_token(server: str, ca_file: Path, token: str) -> KubeApis:
    """A client authenticated by a bearer token (used for ServiceAccount tokens)."""
    configuration = client.Configuration()
    configuration.host = server
    configuration.ssl_ca_cert = str(ca_file)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    configuration.retries = False
    return KubeApis(client.ApiClient(configuration))


def api_message(exc: ApiException) -> str:
    """The apiserver's own message (it names the user, verb, resource and namespace on 403)."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return str(body.get("message") or exc.reason or f"HTTP {exc.status}")


def classify(exc: BaseException, doing: str) -> ApplicationError:
    """Turn a client-side failure into the ApplicationError Temporal should see (a new one, so
    `raise classify(exc, ...) from exc` never makes an error its own cause: an ApplicationError is
    copied with its message, type, details and retry policy)."""
    if isinstance(exc, ApplicationError):
        return ApplicationError(
            exc.message,
            *exc.details,
            type=exc.type,
            non_retryable=exc.non_retryable,
            next_retry_delay=exc.next_retry_delay,
        )
    if isinstance(exc, ApiException):
        status = exc.status or 0
        message = api_message(exc)
        if status == 403:
            return ApplicationError(
                f"forbidden while {doing}: {message} (grant this verb in deploy/rbac/ or page a human)",
                {"status": 403, "missing_permission": message},
                type="KubeForbidden",
                non_retryable=True,
            )
        if status == 401:
            return ApplicationError(
                f"unauthorized while {doing}: {message}", type="KubeUnauthorized", non_retryable=True
            )
        if status in (400, 404, 422):
            return ApplicationError(
                f"{doing}: {message}", {"status": status}, type=f"Kube{status}", non_retryable=True
            )
        return ApplicationError(
            f"{doing}: HTTP {status}: {message}", {"status": status}, type="KubeRetryable"
        )
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError | TimeoutError):
        return ApplicationError(f"{doing}: {type(exc).__name__}: {exc}", type="KubeUnavailable")
    return ApplicationError(f"{doing}: {type(exc).__name__}: {exc}", type="KubeError")


def retry_on_conflict(operation: Callable[[], T], attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Run a read-modify-write `operation`, re-running it (so it reads afresh) on 409."""
    for attempt in range(attempts):
        try:
            return operation()
        except ApiException as exc:
            if exc.status != 409 or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status == 404
