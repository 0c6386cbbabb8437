"""`backout demo --gitops`: the demo's service as a Git repository that Flux applies.

A fleet repository (served by git http-backend on loopback, with Basic auth) holds the service's
manifests; Flux's source-controller and kustomize-controller (built from Go modules by `make deps`)
apply them to the `demo` namespace. Each of the demo's three changes is a commit by its own author;
backout reads the commit behind each change, and for the culprit suspends the Kustomization, rolls
back in the cluster, opens a pull request with the revert on the local GitHub API, where a reviewer
(this module, playing the human) merges it; backout then resumes Flux and verifies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import ApiClient, CustomObjectsApi, V1ObjectMeta, V1Secret
from kubernetes.client.exceptions import ApiException

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
from devstack.demo import workloads
from devstack.gitops.fleet import Author, Fleet
from devstack.gitops.flux import FluxControllers
from devstack.gitops.forge import ForgeRecorder
from devstack.gitops.git_server import BasicCredentials, GitHttpServer

FLEET = "orbitdesk-fleet"
OWNER = "orbitdesk"
GIT_USER = "flux-bot"
GIT_TOKEN = "demo-git-token-4f1c9a7e2b"
FORGE_TOKEN = "demo-forge-token-8d3e6b0a51"
INTERVAL = "3s"
KUSTOMIZATION = "orbitdesk"
PLATFORM: Author = ("Platform Team", "platform@orbitdesk.example")
INGEST: Author = ("Ingest Pipeline", "ingest@orbitdesk.example")
PROMPTS: Author = ("Priya Shah", "priya@orbitdesk.example")
GATEWAY: Author = ("Gabe Okafor", "gabe@orbitdesk.example")
# The reviewer merges a revert request this long after backout opened it.
REVIEW_AFTER_S = 8.0


def _manifest(obj: Any, api_version: str, kind: str) -> dict[str, Any]:
    data: dict[str, Any] = ApiClient().sanitize_for_serialization(obj)
    data = {"apiVersion": api_version, "kind": kind, **data}
    data["metadata"]["namespace"] = workloads.NAMESPACE
    return data


def _yaml(manifest: dict[str, Any]) -> str:
    return yaml.safe_dump(manifest, sort_keys=False)


class DemoFleet:
    """Git server, local GitHub API, Flux and the fleet repository for the demo's service."""

    def __init__(self, work_dir: Path, kubeconfig: Path, apis: KubeApis) -> None:
        work_dir = work_dir.absolute()  # git and the controllers run in other directories
        self.work_dir = work_dir
        self.apis = apis
        self.custom = CustomObjectsApi(apis.api_client)
        self.git = GitHttpServer(work_dir / "git", BasicCredentials(GIT_USER, GIT_TOKEN))
        self.forge = ForgeRecorder({}, FORGE_TOKEN)
        self.flux = FluxControllers(kubeconfig, work_dir / "flux")
        self.fleet: Fleet | None = None
        self.manifests: dict[str, dict[str, Any]] = {}
        self.commits: list[tuple[datetime, str, str]] = []  # (when, sha, what)
        self.merged: list[str] = []
        self._started: list[Callable[[], None]] = []

    # --- lifecycle --------------------------------------------------------------------------

    def start(self, timeout_s: float = 180.0) -> DemoFleet:
        """Everything up, the service committed and applied by Flux."""
        for part in (self.git, self.forge):
            part.start()
            self._started.append(part.stop)
        self._started.append(self.flux.stop)  # stops what it started, also after a failed start
        self.flux.start(timeout_s=timeout_s)
        self.fleet = Fleet(self.git, FLEET, self.work_dir / "fleet-work")
        self.forge.add_repository(f"{OWNER}/{FLEET}", self.fleet.bare)
        deployments, configmaps = workloads.service_objects()
        for deployment in deployments:
            manifest = _manifest(deployment, "apps/v1", "Deployment")
            self.manifests[f"apps/{manifest['metadata']['name']}.yaml"] = manifest
        for configmap in configmaps:
            manifest = _manifest(configmap, "v1", "ConfigMap")
            self.manifests[f"apps/{manifest['metadata']['name']}.yaml"] = manifest
        files = {path: _yaml(manifest) for path, manifest in self.manifests.items()}
        first = self._commit(files, "orbitdesk: rag-api, retriever, llm and gateway", PLATFORM)
        self._secrets()
        self._reconciler()
        self.wait_applied(first, timeout_s)
        return self

    def stop(self) -> None:
        while self._started:
            self._started.pop()()

    def _secrets(self) -> None:
        """The Git and GitHub tokens, in Secrets: Flux reads the first, backout reads both."""
        for name, data in (
            ("git-auth", {"username": GIT_USER, "password": GIT_TOKEN}),
            ("github-token", {"token": FORGE_TOKEN}),
        ):
            secret = V1Secret(
                metadata=V1ObjectMeta(name=name, namespace=workloads.NAMESPACE), string_data=data
            )
            try:
                self.apis.core.create_namespaced_secret(workloads.NAMESPACE, secret)
            except ApiException as exc:
                if exc.status != 409:
                    raise

    def _reconciler(self) -> None:
        assert self.fleet is not None
        namespace = workloads.NAMESPACE
        self.custom.create_namespaced_custom_object(
            "source.toolkit.fluxcd.io", "v1", namespace, "gitrepositories",
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": FLEET, "namespace": namespace},
                "spec": {"url": self.fleet.url, "interval": INTERVAL, "ref": {"branch": "main"},
                         "secretRef": {"name": "git-auth"}},
            },
        )  # fmt: skip
        self.custom.create_namespaced_custom_object(
            "kustomize.toolkit.fluxcd.io", "v1", namespace, "kustomizations",
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": KUSTOMIZATION, "namespace": namespace},
                "spec": {"interval": INTERVAL, "retryInterval": INTERVAL, "path": "./apps", "prune": True,
                         "sourceRef": {"kind": "GitRepository", "name": FLEET}, "timeout": "60s"},
            },
        )  # fmt: skip

    def kustomization(self) -> dict[str, Any]:
        found: Any = self.custom.get_namespaced_custom_object(
            "kustomize.toolkit.fluxcd.io", "v1", workloads.NAMESPACE, "kustomizations", KUSTOMIZATION
        )
        return dict(found)

    def applied_revision(self) -> str:
        return str((self.kustomization().get("status") or {}).get("lastAppliedRevision", ""))

    def wait_applied(self, sha: str, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.applied_revision().endswith(sha):
            if time.monotonic() > deadline:
                status = self.kustomization().get("status")
                raise TimeoutError(f"Flux did not apply {sha[:12]} within {timeout_s:.0f}s: {status}")
            time.sleep(0.5)

    # --- the three changes, as commits ------------------------------------------------------

    def _commit(self, files: dict[str, str], message: str, author: Author) -> str:
        assert self.fleet is not None
        sha = self.fleet.commit(files, message, author)
        self.commits.append((datetime.now(UTC), sha, message))
        return sha

    def _change(self, path: str, message: str, author: Author, edit: dict[str, Any]) -> str:
        """Merge `edit` into one manifest, commit it and wait for Flux to apply it."""
        manifest = self.manifests[path]
        _merge(manifest, edit)
        sha = self._commit({path: _yaml(manifest)}, message, author)
        self.wait_applied(sha)
        return sha

    def set_corpus(self, version: str) -> str:
        return self._change(
            f"apps/{workloads.CORPUS_CONFIGMAP}.yaml",
            f"retriever: re-index the corpus ({version})",
            INGEST,
            {
                "metadata": {"annotations": {"backout.dev/corpus-version": version}},
                "data": {"corpus_version": version, "index": f"s3://corpora/orbitdesk/{version.removeprefix('corpus-')}"},
            },
        )  # fmt: skip

    def set_prompt(self, version: str, template: str) -> str:
        return self._change(
            f"apps/{workloads.PROMPT_CONFIGMAP}.yaml",
            f"rag-api: shorter system prompt ({version})",
            PROMPTS,
            {
                "metadata": {"annotations": {"backout.dev/prompt-version": version}},
                "data": {"prompt_version": version, "template": template},
            },
        )

    def set_image(self, deployment: str, image: str, cause: str) -> str:
        path = f"apps/{deployment}.yaml"
        containers = self.manifests[path]["spec"]["template"]["spec"]["containers"]
        containers[0]["image"] = image
        return self._change(
            path, cause, GATEWAY, {"metadata": {"annotations": {"kubernetes.io/change-cause": cause}}}
        )

    # --- the human reviewer -----------------------------------------------------------------

    async def review(self, stop: asyncio.Event, after_s: float = REVIEW_AFTER_S) -> None:
        """Merge every open request on the fleet `after_s` after it was opened (a human's review)."""
        seen: dict[int, float] = {}
        while not stop.is_set():
            for request in self.forge.change_requests:
                if request.state != "open" or FLEET not in request.repository:
                    continue
                first = seen.setdefault(request.number, time.monotonic())
                if time.monotonic() - first >= after_s:
                    sha = await asyncio.to_thread(self.forge.merge, "github", request.number)
                    self.merged.append(sha)
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass

    # --- what backout is told ---------------------------------------------------------------

    def settings_overrides(self) -> dict[str, Any]:
        """The `gitops` settings: the fleet, its credentials and the pull request provider, as Secrets."""
        assert self.fleet is not None
        namespace = workloads.NAMESPACE
        return {
            "gitops": GitOpsConfig(
                cache_dir=self.work_dir / "backout-clones",
                author=GitIdentity(name="backout", email="backout@orbitdesk.example"),
                repositories=[
                    RepositoryConfig(
                        url=self.fleet.url,
                        credentials=GitCredentials(
                            username=GIT_USER,
                            token=Credential(secret_ref=SecretKeyRef(namespace=namespace, name="git-auth", key="password")),
                        ),
                        provider=GitHubConfig(
                            api_url=self.forge.github_api_url,
                            repository=f"{OWNER}/{FLEET}",
                            token=Credential(secret_ref=SecretKeyRef(namespace=namespace, name="github-token", key="token")),
                        ),
                    )
                ],
            )
        }  # fmt: skip


def _merge(target: dict[str, Any], edit: dict[str, Any]) -> None:
    for key, value in edit.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value
