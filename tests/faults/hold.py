"""Holding one write inside the real apiserver: a validating admission webhook served by the test.

The apiserver calls the webhook synchronously while it processes a request, before it stores the
object. The webhook answers every request at once except the first one `hold_when` picks: that
one it records (proof the write was sent and reached the apiserver) and keeps waiting until the
test releases it. So a drill can act at the exact moment a write is in flight: sent, not yet
answered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from kubernetes.client import (
    AdmissionregistrationV1Api,
    AdmissionregistrationV1WebhookClientConfig,
    V1LabelSelector,
    V1ObjectMeta,
    V1RuleWithOperations,
    V1ValidatingWebhook,
    V1ValidatingWebhookConfiguration,
)

from activities.kube.client import KubeApis
from devstack.receivers.server import ReceiverServer, make_loopback_tls

HOLD_LIMIT_S = 25.0  # below the webhook's 30 s timeout: a held write is never failed by the apiserver


class HeldWrite:
    """The webhook's state: every request seen, the one held, and the release."""

    def __init__(self, hold_when: Callable[[dict[str, Any]], bool]) -> None:
        self.hold_when = hold_when
        self.seen: list[dict[str, Any]] = []
        self.held: dict[str, Any] | None = None
        self.holding = threading.Event()
        self.released = threading.Event()
        self._lock = threading.Lock()

    async def review(self, request: Request) -> dict[str, Any]:
        review = await request.json()
        admission = review["request"]
        with self._lock:
            self.seen.append(admission)
            hold = self.held is None and self.hold_when(admission)
            if hold:
                self.held = admission
        if hold:
            self.holding.set()
            await asyncio.to_thread(self.released.wait, HOLD_LIMIT_S)
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": admission["uid"], "allowed": True},
        }


@contextlib.contextmanager
def held_deployment_write(
    apis: KubeApis, namespace: str, app: str, directory: Path, hold_when: Callable[[dict[str, Any]], bool]
) -> Iterator[HeldWrite]:
    """A webhook on UPDATE/PATCH of Deployments labelled app=`app` in `namespace` (and nothing else),
    active when the block starts; removed, and any held write released, when it ends."""
    held = HeldWrite(hold_when)
    app_ = FastAPI()
    app_.post("/review")(held.review)
    tls = make_loopback_tls(directory)
    server = ReceiverServer(app_, tls).start()
    admission = AdmissionregistrationV1Api(apis.api_client)
    name = f"backout-hold-{namespace}"[:63]
    admission.create_validating_webhook_configuration(
        V1ValidatingWebhookConfiguration(
            metadata=V1ObjectMeta(name=name),
            webhooks=[
                V1ValidatingWebhook(
                    name="hold.faults.backout.dev",
                    client_config=AdmissionregistrationV1WebhookClientConfig(
                        url=f"{server.url}/review",
                        ca_bundle=base64.b64encode(tls.ca_file.read_bytes()).decode(),
                    ),
                    rules=[
                        V1RuleWithOperations(
                            api_groups=["apps"],
                            api_versions=["v1"],
                            operations=["UPDATE"],
                            resources=["deployments"],
                            scope="Namespaced",
                        )
                    ],
                    namespace_selector=V1LabelSelector(
                        match_labels={"kubernetes.io/metadata.name": namespace}
                    ),
                    object_selector=V1LabelSelector(match_labels={"app": app}),
                    side_effects="None",
                    admission_review_versions=["v1"],
                    failure_policy="Ignore",  # the webhook gone never blocks the shared cluster
                    timeout_seconds=30,
                )
            ],
        )
    )
    try:
        _until_active(apis, namespace, app, held)
        yield held
    finally:
        held.released.set()
        admission.delete_validating_webhook_configuration(name)
        server.stop()


def _until_active(apis: KubeApis, namespace: str, app: str, held: HeldWrite, timeout_s: float = 30) -> None:
    """The apiserver loads webhook configurations asynchronously: touch the object until one of
    the touches reaches the webhook."""
    deadline = threading.Event()
    timer = threading.Timer(timeout_s, deadline.set)
    timer.start()
    try:
        probe = 0
        while not deadline.is_set():
            probe += 1
            body = {"metadata": {"annotations": {"faults.backout.dev/probe": str(probe)}}}
            apis.apps.patch_namespaced_deployment(app, namespace, body)
            if any(
                (a.get("object") or {})
                .get("metadata", {})
                .get("annotations", {})
                .get("faults.backout.dev/probe")
                == str(probe)
                for a in list(held.seen)
            ):
                return
            deadline.wait(0.2)
        raise AssertionError(f"the admission webhook never saw an update within {timeout_s}s")
    finally:
        timer.cancel()
