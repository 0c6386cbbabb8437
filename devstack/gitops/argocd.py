"""Argo CD's CRDs, vendored from its Go module (see argocd/README.md), on the local control plane."""

from __future__ import annotations

from pathlib import Path

from devstack.gitops.crds import apply_crds

VENDORED = Path(__file__).with_name("argocd")
ARGOCD_VERSION = "v3.6.1"
CRD_FILES = ("application-crd.yaml", "appproject-crd.yaml")


def install_crds(kubeconfig: Path, timeout_s: float = 60.0) -> list[str]:
    return apply_crds(kubeconfig, [VENDORED / name for name in CRD_FILES], timeout_s)
