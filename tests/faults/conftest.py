"""Fault tests stop and freeze the apiserver: they get a control plane of their own, so the
suite's shared cluster (and KWOK's watches on it) never sees their damage."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.cluster.local import LocalCluster
from tests.fixtures.kube import started_cluster


@pytest.fixture(scope="module")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    yield from started_cluster(tmp_path_factory, "fault-cluster")
