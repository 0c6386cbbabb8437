"""The latency bench's measuring parts on real components: rollback watch, patch floor, workflow floor.

The full `backout bench latency` needs the whole pipeline wired into `backout up`; these
tests pin down that what it measures with is right.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as kube_client
from kubernetes import config as kube_config
from temporalio.api.common.v1 import ActivityType
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import (
    ActivityTaskScheduledEventAttributes,
    ActivityTaskStartedEventAttributes,
    HistoryEvent,
)

from devstack.bench.latency import (
    PHASES,
    TARGET_P50_RATIO,
    TARGET_P99_RATIO,
    _phase_summary,
    _phases_of,
    _result,
    run_latency,
)
from devstack.bench.latency_parts import (
    BAD_IMAGE,
    GOOD_IMAGE,
    SERVICE,
    RollbackWatch,
    patch_floor,
    prepare_deployments,
    workflow_floor,
)
from devstack.bench.machine import Load, Memory
from devstack.cluster.local import LocalCluster
from worker.temporal_server import TemporalDevServer


@pytest.fixture
def apps_and_core(
    kube_cluster: LocalCluster,
) -> Iterator[tuple[kube_client.AppsV1Api, kube_client.CoreV1Api]]:
    api_client = kube_config.new_client_from_config(config_file=str(kube_cluster.kubeconfig))
    try:
        yield kube_client.AppsV1Api(api_client), kube_client.CoreV1Api(api_client)
    finally:
        api_client.close()


def _image(apps: kube_client.AppsV1Api, namespace: str, name: str) -> str:
    deployment = apps.read_namespaced_deployment(name, namespace)
    return str(deployment.spec.template.spec.containers[0].image)  # type: ignore[union-attr]


@pytest.mark.kube
def test_watch_times_only_the_armed_rollback_and_patch_floor_is_real(
    apps_and_core: tuple[kube_client.AppsV1Api, kube_client.CoreV1Api],
) -> None:
    apps, core = apps_and_core
    suffix = uuid.uuid4().hex[:6]
    armed, other = f"t-lat-armed-{suffix}", f"t-lat-other-{suffix}"
    prepare_deployments(apps, core, [armed, other])
    try:
        assert _image(apps, armed, SERVICE) == BAD_IMAGE
        watch = RollbackWatch(apps)
        watch.start()
        try:
            seen = watch.arm(armed)
            assert watch.listening(armed).wait(15), "the watch never delivered the armed Deployment"
            good = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": GOOD_IMAGE}]}}}}
            started = time.perf_counter()
            apps.patch_namespaced_deployment(SERVICE, other, good)
            apps.patch_namespaced_deployment(SERVICE, armed, good)
            assert seen.wait(15), "the watch never saw the rollback"
            assert started < watch.seen_at[armed] < time.perf_counter()
            assert other not in watch.seen_at, "an unarmed deployment must not be timed"
        finally:
            watch.stop()
        timings = patch_floor(apps, other, SERVICE, 5)
        assert len(timings) == 5 and all(t > 0 for t in timings)
        annotations = apps.read_namespaced_deployment(SERVICE, other).metadata.annotations or {}  # type: ignore[union-attr]
        assert annotations["backout.dev/bench-floor"] == "4"
    finally:
        core.delete_namespace(armed)
        core.delete_namespace(other)


@pytest.mark.temporal
async def test_workflow_floor_runs_real_round_trips(temporal_server: TemporalDevServer) -> None:
    timings = await workflow_floor(temporal_server.address, 3)
    assert len(timings) == 3 and all(t > 0 for t in timings)


def test_watch_stop_returns_without_events() -> None:
    # A watch whose stream never yields must still stop promptly (the CLI must not hang on exit).
    class SilentApps:
        def list_deployment_for_all_namespaces(self, *args: object, **kwargs: object) -> object:
            raise ConnectionError("no apiserver")

    watch = RollbackWatch(SilentApps())  # type: ignore[arg-type]
    watch.start()
    started = time.monotonic()
    watch.stop()
    assert time.monotonic() - started < 5
    assert not any(t.name == "rollback-watch" and t.is_alive() for t in threading.enumerate())


@pytest.mark.kube
@pytest.mark.temporal
@pytest.mark.slow
async def test_latency_bench_times_real_rollbacks(kube_cluster: LocalCluster, tmp_path: Path) -> None:
    result = await run_latency(2, tmp_path, per_incident_timeout_s=60, kubeconfig=kube_cluster.kubeconfig)
    assert result.rolled_back == 2, result.problems
    assert result.p50_ms is not None and result.p99_ms is not None and 0 < result.p50_ms <= result.p99_ms
    assert result.floor_workflow_p50_ms and result.floor_patch_p50_ms
    assert {"collect_and_attribute", "remediate"} <= set(result.step_mean_ms)
    # Nothing goes through the task queue before the rollback: the context is a local activity and
    # the opening page waits for the patch (workflows/incident.py).
    assert sum(path.incidents for path in result.paths_to_patch) == 2, result.paths_to_patch
    assert all(path.activities == [] for path in result.paths_to_patch), result.paths_to_patch
    # Two local activities at once (the context with its ranking, the runbooks), not three.
    assert all(path.local_activities == 2 for path in result.paths_to_patch), result.paths_to_patch
    assert result.floor_p50_ms and result.ratio_p50 == pytest.approx(
        result.p50_ms / result.floor_p50_ms, abs=0.006
    )
    assert result.targets_met == (not result.target_misses)


def test_latency_result_names_each_missed_ratio() -> None:
    floor_wf, floor_patch = [0.010] * 10, [0.005] * 10  # a floor of 15 ms
    within = _result(["a", "b"], [0.020, 0.024], floor_wf, floor_patch, [], Load.now(), Memory(), None, [])
    assert within.floor_p50_ms == 15.0
    assert within.targets_met is True and within.ratio_p50 is not None
    assert within.ratio_p50 <= TARGET_P50_RATIO
    slow = _result(["a", "b"], [0.030, 0.040], floor_wf, floor_patch, [], Load.now(), Memory(), None, [])
    assert slow.targets_met is False
    assert [miss.split()[0] for miss in slow.target_misses] == ["p50", "p99"]
    assert slow.ratio_p99 is not None and slow.ratio_p99 > TARGET_P99_RATIO
    missing = _result(["a", "b"], [0.020], floor_wf, floor_patch, [], Load.now(), Memory(), None, [])
    assert missing.targets_met is None  # an incident without a rollback: no claim either way


def _event(event_id: int, kind: int, at: float, **attributes: object) -> HistoryEvent:
    event = HistoryEvent(event_id=event_id, event_type=kind, **attributes)  # type: ignore[arg-type]
    event.event_time.FromMicroseconds(int(at * 1_000_000))
    return event


def test_phases_split_the_time_to_the_patch_at_the_history_events() -> None:
    remediate = ActivityTaskScheduledEventAttributes(activity_type=ActivityType(name="remediate"))
    events = [
        _event(1, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, 100.010),
        _event(2, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, 100.010),
        _event(3, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED, 100.030),
        _event(4, EventType.EVENT_TYPE_MARKER_RECORDED, 100.050),
        _event(5, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 100.070),
        _event(
            6,
            EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
            100.070,
            activity_task_scheduled_event_attributes=remediate,
        ),
        _event(
            7,
            EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
            100.072,
            activity_task_started_event_attributes=ActivityTaskStartedEventAttributes(scheduled_event_id=6),
        ),
        _event(8, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, 100.090),
        _event(9, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 100.100),
    ]
    phases = _phases_of(events, sent_at=100.000, seen_at=100.085)
    assert phases is not None
    assert [round(phases[name] * 1000) for name in PHASES] == [10, 20, 40, 2, 13]
    # Without a remediate activity there is nothing to split.
    assert _phases_of(events[:5], sent_at=100.0, seen_at=100.085) is None
    summary = _phase_summary([phases, phases])
    assert summary.incidents == 2 and summary.p50_ms["tasks_to_remediate"] == pytest.approx(40, abs=0.01)
