"""Fixtures for the GitOps tests: real Flux controllers on the session's control plane, a real
Git server (git http-backend) on loopback, a local GitHub/GitLab API, and a fleet repository
per test that Flux reconciles into the test's namespace."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import watch
from kubernetes.client import CustomObjectsApi, V1ObjectMeta, V1Secret
from kubernetes.client.exceptions import ApiException

from activities.gitops.activities import GitOpsActivities
from activities.gitops.secrets import Redactor
from activities.kube.client import KubeApis
from config.gitops import (
    Credential,
    GitCredentials,
    GitHubConfig,
    GitIdentity,
    GitOpsConfig,
    RepositoryConfig,
    SecretKeyRef,
)
from devstack.cluster.local import LocalCluster
from devstack.gitops.fleet import Fleet
from devstack.gitops.flux import FluxControllers
from devstack.gitops.forge import ForgeRecorder
from devstack.gitops.git_server import BasicCredentials, GitHttpServer

GIT_USER = "fleet-bot"
GIT_TOKEN = "glpat-gitops-test-0123456789abcdef"
FORGE_TOKEN = "ghp_forgetoken0123456789abcdefABCDEF"
RECONCILE_INTERVAL = "2s"


def wait_until(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.5) -> Any:
    """Poll until `predicate()` is truthy; returns its last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout_s
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval_s)
        value = predicate()
    return value


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttpServer]:
    with GitHttpServer(
        tmp_path_factory.mktemp("git-server"), BasicCredentials(GIT_USER, GIT_TOKEN)
    ) as server:
        yield server


@pytest.fixture(scope="session")
def flux(kube_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FluxControllers]:
    controllers = FluxControllers(kube_cluster.kubeconfig, tmp_path_factory.mktemp("flux"))
    controllers.start(timeout_s=120)
    try:
        yield controllers
    finally:
        controllers.stop()


@pytest.fixture(scope="session")
def forge_session() -> Iterator[ForgeRecorder]:
    with ForgeRecorder({}, FORGE_TOKEN) as forge:
        yield forge


def configmap_manifest(
    name: str, namespace: str, data: dict[str, str], comment_after: str | None = None
) -> str:
    lines = [
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        f"  name: {name}",
        f"  namespace: {namespace}",
        "data:",
    ]
    for key, value in data.items():
        lines.append(f"  {key}: {value!r}".replace("'", '"'))
        if comment_after == key:
            lines.append("  # reviewed by the platform team")
    return "\n".join(lines) + "\n"


def ensure_git_auth(apis: KubeApis, namespace: str) -> None:
    """The Secret Flux and backout both read the Git credentials from (username + password keys)."""
    secret = V1Secret(
        metadata=V1ObjectMeta(name="git-auth", namespace=namespace),
        string_data={"username": GIT_USER, "password": GIT_TOKEN},
    )
    try:
        apis.core.create_namespaced_secret(namespace, secret)
    except ApiException as exc:
        if exc.status != 409:
            raise


class ConfigMapHistory:
    """Every content a ConfigMap takes, seen through a watch (a poll can miss a short-lived one)."""

    def __init__(self, apis: KubeApis, namespace: str, name: str) -> None:
        self.seen: list[dict[str, str]] = []
        self._stop = threading.Event()
        current = apis.core.read_namespaced_config_map(name, namespace)
        self._resource_version = current.metadata.resource_version
        self._thread = threading.Thread(target=self._run, args=(apis, namespace, name), daemon=True)
        self._thread.start()

    def _run(self, apis: KubeApis, namespace: str, name: str) -> None:
        while not self._stop.is_set():
            stream = watch.Watch().stream(
                apis.core.list_namespaced_config_map,
                namespace,
                field_selector=f"metadata.name={name}",
                resource_version=self._resource_version,
                timeout_seconds=2,
            )
            for event in stream:
                obj = event["object"]
                self._resource_version = obj.metadata.resource_version
                data = dict(obj.data or {})
                if not self.seen or self.seen[-1] != data:
                    self.seen.append(data)

    def stop(self) -> list[dict[str, str]]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.seen


class FluxSetup:
    """A fleet repository applied by a GitRepository + Kustomization in the test namespace."""

    def __init__(self, apis: KubeApis, namespace: str, fleet: Fleet) -> None:
        self.apis = apis
        self.namespace = namespace
        self.fleet = fleet
        self.custom = CustomObjectsApi(apis.api_client)
        self.name = "apps"

    def create(self, path: str = "./apps") -> None:
        ensure_git_auth(self.apis, self.namespace)
        self.custom.create_namespaced_custom_object(
            "source.toolkit.fluxcd.io",
            "v1",
            self.namespace,
            "gitrepositories",
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": "fleet", "namespace": self.namespace},
                "spec": {
                    "url": self.fleet.url,
                    "interval": RECONCILE_INTERVAL,
                    "ref": {"branch": "main"},
                    "secretRef": {"name": "git-auth"},
                },
            },
        )
        self.custom.create_namespaced_custom_object(
            "kustomize.toolkit.fluxcd.io",
            "v1",
            self.namespace,
            "kustomizations",
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {
                    "interval": RECONCILE_INTERVAL,
                    "retryInterval": RECONCILE_INTERVAL,
                    "path": path,
                    "prune": True,
                    "sourceRef": {"kind": "GitRepository", "name": "fleet"},
                    "timeout": "30s",
                },
            },
        )

    def kustomization(self) -> dict[str, Any]:
        found: Any = self.custom.get_namespaced_custom_object(
            "kustomize.toolkit.fluxcd.io", "v1", self.namespace, "kustomizations", self.name
        )
        return found

    def applied_revision(self) -> str:
        return str((self.kustomization().get("status") or {}).get("lastAppliedRevision", ""))

    def wait_applied(self, sha: str, timeout_s: float = 90.0) -> None:
        applied = wait_until(lambda: self.applied_revision().endswith(sha), timeout_s)
        assert applied, (
            f"Flux did not apply {sha[:12]} (applied: {self.applied_revision()!r}): {self.kustomization().get('status')}"
        )

    def configmap_data(self, name: str) -> dict[str, str] | None:
        try:
            return dict(self.apis.core.read_namespaced_config_map(name, self.namespace).data or {})
        except Exception:
            return None


@pytest.fixture
def fleet(git_server: GitHttpServer, tmp_path: Path) -> Fleet:
    return Fleet(git_server, f"fleet-{uuid.uuid4().hex[:8]}", tmp_path / "fleet-work")


@pytest.fixture
def flux_setup(flux: FluxControllers, kube_apis: KubeApis, kube_namespace: str, fleet: Fleet) -> FluxSetup:
    return FluxSetup(kube_apis, kube_namespace, fleet)


@pytest.fixture
def gitops_redactor() -> Redactor:
    return Redactor()


def gitops_config(
    fleet: Fleet, namespace: str, cache_dir: Path, forge: ForgeRecorder | None = None
) -> GitOpsConfig:
    """Credentials as Secret references (the production path): the token is read from the cluster."""
    provider = None
    if forge is not None:
        forge.add_repository(f"acme/{fleet.name}", fleet.bare)
        provider = GitHubConfig(
            api_url=forge.github_api_url,
            repository=f"acme/{fleet.name}",
            token=Credential(secret_ref=SecretKeyRef(namespace=namespace, name="forge-token", key="token")),
        )
    return GitOpsConfig(
        cache_dir=cache_dir,
        author=GitIdentity(name="backout", email="backout@example.com"),
        repositories=[
            RepositoryConfig(
                url=fleet.url,
                credentials=GitCredentials(
                    username=GIT_USER,
                    token=Credential(
                        secret_ref=SecretKeyRef(namespace=namespace, name="git-auth", key="password")
                    ),
                ),
                provider=provider,
            )
        ],
    )


@pytest.fixture
def forge(forge_session: ForgeRecorder, kube_apis: KubeApis, kube_namespace: str) -> ForgeRecorder:
    token = base64.b64encode(FORGE_TOKEN.encode()).decode()
    kube_apis.core.create_namespaced_secret(
        kube_namespace, V1Secret(metadata=V1ObjectMeta(name="forge-token"), data={"token": token})
    )
    return forge_session


@pytest.fixture
def make_activities(
    kube_apis: KubeApis, kube_namespace: str, fleet: Fleet, tmp_path: Path, gitops_redactor: Redactor
) -> Callable[..., GitOpsActivities]:
    def make(forge: ForgeRecorder | None = None) -> GitOpsActivities:
        ensure_git_auth(kube_apis, kube_namespace)
        config = gitops_config(fleet, kube_namespace, tmp_path / "gitops-cache", forge)
        return GitOpsActivities(config, lambda: kube_apis, gitops_redactor, allowed=lambda namespace: True)

    return make
