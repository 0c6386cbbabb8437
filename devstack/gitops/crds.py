"""Install CustomResourceDefinitions on the local control plane with its own kubectl."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from devstack.cluster import build as cluster_build


class CrdError(RuntimeError):
    """CRDs could not be applied or did not become Established; the message carries kubectl's words."""


def apply_crds(kubeconfig: Path, files: list[Path], timeout_s: float = 60.0) -> list[str]:
    """Server-side apply `files` and wait until every CRD is Established; returns their names."""
    kubectl = str(cluster_build.binary_path("kubectl"))
    args = [kubectl, f"--kubeconfig={kubeconfig}", "apply", "--server-side", "--force-conflicts"]
    for path in files:
        args += ["-f", str(path)]
    completed = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
    if completed.returncode != 0:
        raise CrdError(
            f"applying {', '.join(p.name for p in files)} failed: {completed.stderr.strip()[-2000:]}"
        )
    names = [line.split()[0] for line in completed.stdout.splitlines() if line.strip()]
    # `kubectl wait` right after an apply fails on a CRD that has no conditions yet: poll instead.
    deadline = time.monotonic() + timeout_s
    while True:
        listed = subprocess.run(
            [kubectl, f"--kubeconfig={kubeconfig}", "get", *names, "-o", "json"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if listed.returncode == 0 and all(_established(crd) for crd in _items(json.loads(listed.stdout))):
            return names
        if time.monotonic() > deadline:
            raise CrdError(f"CRDs not Established after {timeout_s:.0f}s: {listed.stderr.strip()[-1000:]}")
        time.sleep(0.3)


def _items(listed: dict[str, Any]) -> list[dict[str, Any]]:
    """`kubectl get` answers one object for one name and a List for several."""
    return list(listed.get("items", [listed]))


def _established(crd: dict[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
