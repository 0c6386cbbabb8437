"""Run Flux's source-controller and kustomize-controller against the loopback control plane.

Both are controller-runtime managers: they find the cluster through KUBECONFIG (the admin
kubeconfig here), watch all namespaces, and need no leader election. Everything they bind
goes to 127.0.0.1 on free ports: metrics, health probes, and source-controller's artifact
server, which it advertises to kustomize-controller with --storage-adv-addr (in a cluster
that is the Service name; here the loopback address).
"""

from __future__ import annotations

import os
from pathlib import Path

from devstack.gitops import build
from devstack.gitops.components import ProcessGroup
from devstack.gitops.crds import apply_crds
from devstack.process import ManagedProcess, free_port

HELM_RELEASE_CRD = Path(__file__).with_name("flux") / "helm.toolkit.fluxcd.io_helmreleases.yaml"


def install_helm_release_crd(kubeconfig: Path, timeout_s: float = 60.0) -> list[str]:
    """The HelmRelease CRD (vendored from helm-controller, which backout does not run)."""
    return apply_crds(kubeconfig, [HELM_RELEASE_CRD], timeout_s)


def install_crds(kubeconfig: Path, timeout_s: float = 60.0) -> list[str]:
    """Every CRD of both controllers, from the module they were built from."""
    return apply_crds(
        kubeconfig, [path for tool in build.FLUX_TOOLS for path in build.controller_crds(tool)], timeout_s
    )


class FluxControllers(ProcessGroup):
    """source-controller + kustomize-controller as local processes; a context manager."""

    def __init__(self, kubeconfig: Path, work_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.work_dir = work_dir.absolute()  # source-controller refuses a relative storage path
        self.storage_port = free_port()
        super().__init__()

    @property
    def artifact_url(self) -> str:
        return f"http://127.0.0.1:{self.storage_port}"

    def _env(self, name: str) -> dict[str, str]:
        temp = self.work_dir / name / "tmp"
        temp.mkdir(parents=True, exist_ok=True)
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "TMPDIR": str(temp)}

    def _common_args(self) -> tuple[list[str], int]:
        health_port = free_port()
        args = [
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-addr=127.0.0.1:{health_port}",
            "--watch-all-namespaces=true",
            "--log-encoding=console",
            "--log-level=info",
        ]
        return args, health_port

    def _launch(self, timeout_s: float) -> None:
        build.build_flux()
        install_crds(self.kubeconfig)
        storage = self.work_dir / "source-controller" / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        common, source_health = self._common_args()
        source = ManagedProcess(
            "source-controller",
            [
                str(build.controller_binary(build.SOURCE_CONTROLLER)),
                *common,
                f"--storage-path={storage}",
                f"--storage-addr=127.0.0.1:{self.storage_port}",
                f"--storage-adv-addr=127.0.0.1:{self.storage_port}",
                "--artifact-retention-ttl=30s",
            ],
            self.work_dir / "logs" / "source-controller.log",
            cwd=self.work_dir,
            env=self._env("source-controller"),
        )
        common, kustomize_health = self._common_args()
        kustomize = ManagedProcess(
            "kustomize-controller",
            [str(build.controller_binary(build.KUSTOMIZE_CONTROLLER)), *common],
            self.work_dir / "logs" / "kustomize-controller.log",
            cwd=self.work_dir,
            env=self._env("kustomize-controller"),
        )
        for process, port in ((source, source_health), (kustomize, kustomize_health)):
            process.start()
            self.processes.append(process)
            process.wait_http_ready(f"http://127.0.0.1:{port}/readyz", timeout_s)
