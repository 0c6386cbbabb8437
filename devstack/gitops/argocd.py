"""Argo CD on the loopback control plane: its CRDs (vendored from its Go module, see
argocd/README.md) and, when built, its application controller and repo-server.

Argo CD's one binary takes its role from ARGOCD_BINARY_NAME. The two components run as
Argo CD's own Procfile runs them for local development: ARGOCD_FAKE_IN_CLUSTER=true makes
the controller treat https://kubernetes.default.svc as the cluster of its KUBECONFIG, the
repo-server speaks plaintext gRPC on loopback, GPG verification is off, and both share a
Redis (Debian's redis-server) for their caches. The controller reads its settings from the
`argocd-cm` ConfigMap and `argocd-secret` Secret in its namespace, and Applications need the
`default` AppProject.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from kubernetes.client import CustomObjectsApi, V1ConfigMap, V1Namespace, V1ObjectMeta, V1Secret
from kubernetes.client.exceptions import ApiException

from activities.kube.client import apis_from_kubeconfig
from devstack import gobuild
from devstack.gitops.build import ARGOCD
from devstack.gitops.components import ProcessGroup
from devstack.gitops.crds import apply_crds
from devstack.process import ManagedProcess, ProcessStartError, free_port

VENDORED = Path(__file__).with_name("argocd")
ARGOCD_VERSION = "v3.6.1"
CRD_FILES = ("application-crd.yaml", "appproject-crd.yaml")
PART_OF = {"app.kubernetes.io/part-of": "argocd"}


class ArgoCDError(RuntimeError):
    """Argo CD could not be started; the message says what is missing."""


def install_crds(kubeconfig: Path, timeout_s: float = 60.0) -> list[str]:
    return apply_crds(kubeconfig, [VENDORED / name for name in CRD_FILES], timeout_s)


def _wait_port(port: int, process: ManagedProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process.running():
            raise ProcessStartError(f"{process.name} exited during startup; log:\n{process.log_tail()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise ProcessStartError(
        f"{process.name} did not listen on {port} in {timeout_s:.0f}s; log:\n{process.log_tail()}"
    )


def _create(create: Any, *args: Any) -> None:
    try:
        create(*args)
    except ApiException as exc:
        if exc.status != 409:
            raise


class ArgoCD(ProcessGroup):
    """Redis, argocd-repo-server and argocd-application-controller as local processes."""

    def __init__(
        self, kubeconfig: Path, work_dir: Path, namespace: str = "argocd", reconciliation: str = "5s"
    ) -> None:
        self.kubeconfig = kubeconfig
        self.work_dir = work_dir
        self.namespace = namespace
        self.reconciliation = reconciliation
        super().__init__()

    def _bootstrap(self, reconciliation: str) -> None:
        """The namespace, settings and `default` project Argo CD expects (as its install manifests create)."""
        apis = apis_from_kubeconfig(self.kubeconfig)
        try:
            core = apis.core
            _create(core.create_namespace, V1Namespace(metadata=V1ObjectMeta(name=self.namespace)))
            settings = {
                "timeout.reconciliation": reconciliation,
                "application.resourceTrackingMethod": "annotation",
            }
            _create(
                core.create_namespaced_config_map,
                self.namespace,
                V1ConfigMap(metadata=V1ObjectMeta(name="argocd-cm", labels=PART_OF), data=settings),
            )
            _create(
                core.create_namespaced_secret,
                self.namespace,
                V1Secret(metadata=V1ObjectMeta(name="argocd-secret", labels=PART_OF), string_data={}),
            )
            project = {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AppProject",
                "metadata": {"name": "default", "namespace": self.namespace},
                "spec": {
                    "sourceRepos": ["*"],
                    "destinations": [{"server": "*", "namespace": "*"}],
                    "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
                },
            }
            _create(
                CustomObjectsApi(apis.api_client).create_namespaced_custom_object,
                "argoproj.io",
                "v1alpha1",
                self.namespace,
                "appprojects",
                project,
            )
        finally:
            apis.close()

    def _tools_dir(self) -> Path:
        """The wrapper scripts Argo CD's image keeps in /usr/local/bin, executable, for PATH."""
        tools = self.work_dir / "bin"
        tools.mkdir(parents=True, exist_ok=True)
        for relative in ARGOCD.module_files:
            target = tools / Path(relative).name
            shutil.copyfile(gobuild.module_file(ARGOCD, relative), target)
            target.chmod(0o755)
        # The repo-server hands Git credentials over through GIT_ASKPASS=argocd (the same binary).
        link = tools / "argocd"
        link.unlink(missing_ok=True)
        link.symlink_to(gobuild.binary(ARGOCD, "argocd"))
        return tools

    def add_repository(self, url: str, username: str, password: str) -> None:
        """Credentials for a Git repository, as a repository Secret (how Argo CD's docs declare one)."""
        apis = apis_from_kubeconfig(self.kubeconfig)
        name = "repo-" + hashlib.sha256(url.encode()).hexdigest()[:12]
        secret = V1Secret(
            metadata=V1ObjectMeta(name=name, labels={"argocd.argoproj.io/secret-type": "repository"}),
            string_data={"type": "git", "url": url, "username": username, "password": password},
        )
        try:
            _create(apis.core.create_namespaced_secret, self.namespace, secret)
        finally:
            apis.close()

    def _env(self, role: str) -> dict[str, str]:
        home = self.work_dir / role
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        return {
            **os.environ,
            "PATH": f"{self._tools_dir()}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "ARGOCD_BINARY_NAME": role,
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "ARGOCD_GPG_ENABLED": "false",
            "ARGOCD_GNUPGHOME": str(home / "gpg"),
            "ARGOCD_TLS_DATA_PATH": str(home / "tls"),
            "ARGOCD_SSH_DATA_PATH": str(home / "ssh"),
            "ARGOCD_ASK_PASS_SOCK": str(home / "askpass.sock"),
            "KUBECONFIG": str(self.kubeconfig),
            "HOME": str(home),
            "TMPDIR": str(home / "tmp"),
        }

    def _launch(self, timeout_s: float) -> None:
        redis = shutil.which("redis-server")
        if redis is None:
            raise ArgoCDError(
                "Argo CD needs Redis: install Debian's redis-server (apt-get install redis-server)"
            )
        binary = str(gobuild.build(ARGOCD).binaries["argocd"])
        install_crds(self.kubeconfig)
        self._bootstrap(self.reconciliation)
        redis_port, repo_port = free_port(), free_port()
        logs = self.work_dir / "logs"
        components = [
            (
                ManagedProcess(
                    "redis",
                    [
                        redis,
                        "--bind",
                        "127.0.0.1",
                        "--port",
                        str(redis_port),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ],
                    logs / "redis.log",
                    cwd=self.work_dir,
                ),
                redis_port,
            ),
            (
                ManagedProcess(
                    "argocd-repo-server",
                    [
                        binary,
                        "--address=127.0.0.1",
                        f"--port={repo_port}",
                        "--metrics-address=127.0.0.1",
                        f"--metrics-port={free_port()}",
                        f"--redis=127.0.0.1:{redis_port}",
                        "--disable-tls",
                        "--client-ca-path=",
                        "--logformat=text",
                    ],
                    logs / "repo-server.log",
                    cwd=self.work_dir,
                    env=self._env("argocd-repo-server"),
                ),
                repo_port,
            ),
        ]
        metrics = free_port()
        controller = ManagedProcess(
            "argocd-application-controller",
            [
                binary,
                f"--kubeconfig={self.kubeconfig}",
                f"--namespace={self.namespace}",
                f"--repo-server=127.0.0.1:{repo_port}",
                "--repo-server-plaintext",
                f"--redis=127.0.0.1:{redis_port}",
                f"--metrics-port={metrics}",
                "--commit-server=127.0.0.1:1",
                "--app-resync=5",
                # Self-heal at once (no back-off), so a test sees the re-apply within seconds.
                "--self-heal-timeout-seconds=0",
                "--self-heal-backoff-timeout-seconds=0",
                "--logformat=text",
            ],
            logs / "application-controller.log",
            cwd=self.work_dir,
            env=self._env("argocd-application-controller"),
        )
        for process, port in [*components, (controller, metrics)]:
            process.start()
            self.processes.append(process)
            _wait_port(port, process, timeout_s)
