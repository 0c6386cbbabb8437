"""The latency bench's measuring parts: its Deployments, the rollback watch, and the floor.

The floor is what the response path cannot beat on these components: a bare workflow
round trip on the same Temporal plus a bare patch of a Deployment on the same apiserver.
"""

from __future__ import annotations

import threading
import time
import uuid

from kubernetes import client as kube_client
from kubernetes import watch as kube_watch
from kubernetes.client.exceptions import ApiException
from temporalio.client import Client
from temporalio.worker import Worker

from devstack.bench.floor_workflow import NoopWorkflow
from devstack.bench.runner import BenchError

SERVICE = "chat"
BENCH_LABEL = "backout.dev/bench"
GOOD_IMAGE = "bench/chat:v1"
BAD_IMAGE = "bench/chat:v2"


def _deployment() -> kube_client.V1Deployment:
    labels = {"app": SERVICE}
    return kube_client.V1Deployment(
        metadata=kube_client.V1ObjectMeta(name=SERVICE, labels={"service": SERVICE, BENCH_LABEL: "latency"}),
        spec=kube_client.V1DeploymentSpec(
            # No pods: the bench times the control path, not scheduling.
            replicas=0,
            selector=kube_client.V1LabelSelector(match_labels=labels),
            template=kube_client.V1PodTemplateSpec(
                metadata=kube_client.V1ObjectMeta(labels=labels),
                spec=kube_client.V1PodSpec(
                    containers=[kube_client.V1Container(name="app", image=GOOD_IMAGE)]
                ),
            ),
        ),
    )


class RollbackWatch:
    """Records, per namespace, when a watch event first shows the bench Deployment back on the good image."""

    def __init__(self, apps: kube_client.AppsV1Api) -> None:
        self._apps = apps
        self._armed: dict[str, threading.Event] = {}
        self._listening: dict[str, threading.Event] = {}
        self.seen_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._watch = kube_watch.Watch()
        self._thread = threading.Thread(target=self._run, name="rollback-watch", daemon=True)

    def arm(self, namespace: str) -> threading.Event:
        event = threading.Event()
        self._armed[namespace] = event
        return event

    def listening(self, namespace: str) -> threading.Event:
        """Set once the watch has delivered the namespace's bench Deployment: from then on it sees
        every change to it (no sleep needed before a timed rollback)."""
        return self._listening.setdefault(namespace, threading.Event())

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for item in self._watch.stream(
                    self._apps.list_deployment_for_all_namespaces,
                    label_selector=f"{BENCH_LABEL}=latency",
                    timeout_seconds=5,
                ):
                    arrived = time.perf_counter()
                    deployment = item["object"]
                    namespace = deployment.metadata.namespace
                    image = deployment.spec.template.spec.containers[0].image
                    self.listening(namespace).set()
                    event = self._armed.get(namespace)
                    if event is not None and image == GOOD_IMAGE and namespace not in self.seen_at:
                        self.seen_at[namespace] = arrived
                        event.set()
                    if self._stop.is_set():
                        return
            except Exception:  # the watch reconnects; a transient apiserver error must not end it
                time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._watch.stop()
        self._thread.join(timeout=10)


def prepare_deployments(
    apps: kube_client.AppsV1Api, core: kube_client.CoreV1Api, namespaces: list[str]
) -> None:
    """In each namespace, the bench Deployment at revision 2 (bad image) whose revision 1 is the good image."""
    for namespace in namespaces:
        core.create_namespace(kube_client.V1Namespace(metadata=kube_client.V1ObjectMeta(name=namespace)))
    deadline = time.monotonic() + 60
    for namespace in namespaces:
        while True:
            try:
                core.read_namespaced_service_account("default", namespace)
                break
            except ApiException as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    for namespace in namespaces:
        apps.create_namespaced_deployment(namespace, _deployment())
    _wait_revisions(apps, namespaces, "1")
    bad = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": BAD_IMAGE}]}}}}
    for namespace in namespaces:
        apps.patch_namespaced_deployment(SERVICE, namespace, bad)
    _wait_revisions(apps, namespaces, "2")


def _wait_revisions(apps: kube_client.AppsV1Api, namespaces: list[str], revision: str) -> None:
    deadline = time.monotonic() + 120
    waiting = set(namespaces)
    while waiting:
        listed = apps.list_deployment_for_all_namespaces(label_selector=f"{BENCH_LABEL}=latency")
        for deployment in listed.items:
            meta = deployment.metadata
            if (
                meta is not None
                and (meta.annotations or {}).get("deployment.kubernetes.io/revision") == revision
            ):
                waiting.discard(str(meta.namespace))
        if waiting and time.monotonic() > deadline:
            raise BenchError(f"{len(waiting)} deployments never reached revision {revision}")
        time.sleep(0.2)


class WorkflowFloor:
    """Bare workflow round trips (start, one workflow task, result) on a Temporal server, by a
    worker of its own on its own task queue: `async with WorkflowFloor(address) as floor`, then
    `await floor.sample()` as often as wanted."""

    def __init__(self, temporal_address: str) -> None:
        self._address = temporal_address
        self._queue = f"bench-floor-{uuid.uuid4().hex[:8]}"
        self._samples = 0
        self._client: Client | None = None
        self._worker: Worker | None = None

    async def __aenter__(self) -> WorkflowFloor:
        self._client = await Client.connect(self._address)
        self._worker = Worker(self._client, task_queue=self._queue, workflows=[NoopWorkflow])
        await self._worker.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._worker is not None:
            await self._worker.__aexit__(None, None, None)

    async def sample(self) -> float:
        assert self._client is not None, "use WorkflowFloor as an async context manager"
        self._samples += 1
        started = time.perf_counter()
        await self._client.execute_workflow(
            NoopWorkflow.run, self._samples, id=f"{self._queue}-{self._samples}", task_queue=self._queue
        )
        return time.perf_counter() - started


async def workflow_floor(temporal_address: str, samples: int) -> list[float]:
    async with WorkflowFloor(temporal_address) as floor:
        return [await floor.sample() for _ in range(samples)]


def patch_floor(
    apps: kube_client.AppsV1Api, namespace: str, name: str, samples: int, first: int = 0
) -> list[float]:
    """Bare patches of one Deployment (an annotation numbered from `first`), each timed."""
    timings: list[float] = []
    for index in range(first, first + samples):
        body = {"metadata": {"annotations": {"backout.dev/bench-floor": str(index)}}}
        started = time.perf_counter()
        apps.patch_namespaced_deployment(name, namespace, body)
        timings.append(time.perf_counter() - started)
    return timings
