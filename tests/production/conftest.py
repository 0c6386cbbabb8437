"""Production parts on real processes: helm (built from its Go module), Temporal on PostgreSQL,
and the chart applied to the suite's local control plane."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import gobuild
from devstack.cluster import build as cluster_build
from devstack.cluster.local import LocalCluster
from devstack.temporal_sql import TemporalSql, TemporalSqlState
from devstack.tools import HELM

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "backout"
CRDS = Path(__file__).parent / "data" / "prometheus-operator-crds"
VALUES_DIR = Path(__file__).parent / "values"


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    """helm from its Go module, built into the cache once (minutes on a cold machine)."""
    gobuild.build(HELM)
    return gobuild.binary(HELM, "helm")


@pytest.fixture(scope="session")
def kubectl_binary(kube_cluster: LocalCluster) -> Path:
    return cluster_build.binary_path("kubectl", kube_cluster.version)


@pytest.fixture(scope="session")
def production_temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalSqlState]:
    """temporal-server on its own PostgreSQL (fsync off: a test's data need not survive a power cut)."""
    server = TemporalSql(tmp_path_factory.mktemp("temporal-sql"), durable=False)
    with server.running() as state:
        yield state
    server.stop(purge=True)


def run(
    args: list[str | Path], timeout_s: float = 300, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A command's result; on failure the assertion carries its output."""
    completed = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout_s, env=env
    )
    if check:
        assert completed.returncode == 0, (
            f"{' '.join(map(str, args))}:\n{completed.stdout}\n{completed.stderr}"
        )
    return completed
