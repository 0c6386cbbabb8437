"""The cluster reads of one listing of changes (an incident's context), each made at most once.

An incident's context is assembled by parts that run at the same time and would each list the same
objects: the ledger and the topology both need the namespace's Deployments, and the GitOps
annotator needs the objects whose changes the ledger found. Every apiserver call costs a round
trip and, mostly, the client's CPU to decode the answer (which threads do not overlap), so a read
asked for twice is answered by the first: a caller arriving while it is in flight waits for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from activities.kube.client import KubeApis

T = TypeVar("T")


class ClusterReads:
    """Reads shared by the parts of one listing; made for that listing and dropped after it, so
    nothing read here outlives the listing that read it."""

    def __init__(self, apis: KubeApis) -> None:
        self.apis = apis
        self._lock = threading.Lock()
        self._reads: dict[tuple[str, ...], Future[Any]] = {}

    def once(self, key: tuple[str, ...], read: Callable[[], T]) -> T:
        """`read()`'s result, made by the first caller with `key`; a failure reaches every caller."""
        with self._lock:
            made = self._reads.get(key)
            first = made is None
            if made is None:
                made = Future()
                self._reads[key] = made
        if first:
            try:
                made.set_result(read())
            except BaseException as exc:
                made.set_exception(exc)
        return made.result()  # type: ignore[no-any-return]

    def deployments(self, namespace: str) -> list[Any]:
        """Every Deployment of `namespace`."""
        return self.once(
            ("deployments", namespace), lambda: self.apis.apps.list_namespaced_deployment(namespace).items
        )

    def config_maps(self, namespace: str) -> list[Any]:
        """Every ConfigMap of `namespace`."""
        return self.once(
            ("configmaps", namespace), lambda: self.apis.core.list_namespaced_config_map(namespace).items
        )

    def secrets(self, namespace: str) -> list[Any]:
        """Every Secret of `namespace`."""
        return self.once(
            ("secrets", namespace), lambda: self.apis.core.list_namespaced_secret(namespace).items
        )

    def listed_deployment(self, namespace: str, name: str) -> Any | None:
        """The Deployment `name` as its namespace's list found it (waiting for a list in flight);
        None when that list was not asked for here, failed, or did not hold it: the caller then
        reads it itself."""
        with self._lock:
            made = self._reads.get(("deployments", namespace))
        if made is None or made.exception() is not None:
            return None
        return next((item for item in made.result() if item.metadata.name == name), None)
