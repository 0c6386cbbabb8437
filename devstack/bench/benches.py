"""`backout bench ingest` and `backout bench storm`: the load, the checks and the JSON they print."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, Field

from devstack.bench.background import OpenIncidents, background_run_id, open_background, still_open
from devstack.bench.ingest_floor import IngestFloor, measure_floor
from devstack.bench.machine import Load, Memory, read_memory
from devstack.bench.payloads import LoadShape, Notification, plan_notifications
from devstack.bench.runner import (
    BenchError,
    RetryPolicy,
    RunIncidents,
    SendReport,
    alerts_held,
    auth_headers,
    check_api,
    incidents_of_run,
    send_all,
)


class Target(BaseModel):
    url: str = "http://127.0.0.1:8080"
    token: str | None = Field(default=None, description="the sender token (alerts)")
    operator_token: str | None = Field(default=None, description="the operator token (reading incidents)")
    concurrency: int = Field(default=16, ge=1, le=1024)
    list_wait_s: float = Field(
        default=60.0, ge=0, description="how long to wait for incidents to become listed"
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    temporal_address: str | None = Field(
        default=None, description="the Temporal server backout uses: the floor's bare client calls it"
    )
    temporal_namespace: str = "default"
    floor: bool = Field(default=True, description="measure the bare-client floor in the same run")
    open_incidents: int = Field(
        default=0, ge=0, le=1000, description="incidents opened (and settled) before the measurement"
    )


# Acceptance of issue 17: backout's ingest against the bare client's, same run, same concurrency.
TARGET_THROUGHPUT_RATIO = 0.67
TARGET_P99_RATIO = 1.5


class Comparison(BaseModel):
    """backout's figures beside the floor's, and whether they are within the targets."""

    floor: IngestFloor | None = None
    throughput_ratio: float | None = None
    p99_ratio: float | None = None
    target_throughput_ratio: float = TARGET_THROUGHPUT_RATIO
    target_p99_ratio: float = TARGET_P99_RATIO
    targets_met: bool | None = None
    target_misses: list[str] = Field(default_factory=list)
    load: Load
    memory: Memory = Field(default_factory=Memory)
    open_incidents: OpenIncidents | None = None


class IngestResult(Comparison):
    bench: str = "ingest"
    run_id: str
    url: str
    notifications: int
    groups: int
    ha_duplicates: int
    concurrency: int
    wall_s: float
    notifications_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    retries: int
    incidents: int
    incident_runs: int
    incident_states: dict[str, int]
    lost: int
    ok: bool
    problems: list[str]


class StormResult(Comparison):
    bench: str = "storm"
    run_id: str
    url: str
    alerts: int
    groups: int
    notifications: int
    alert_deliveries: int
    ha_duplicates: int
    concurrency: int
    wall_s: float
    alerts_per_s: float
    notifications_per_s: float
    alert_deliveries_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    retries: int
    incidents_opened: int
    incident_runs: int
    incident_states: dict[str, int]
    duplicates_absorbed: int
    alerts_held: int
    alerts_lost: int
    notifications_lost: int
    ok: bool
    problems: list[str]


def ingest_shape(notifications: int, groups: int) -> LoadShape:
    """Each group gets notifications/groups of them: HA pairs of a group growing by one alert each time."""
    if notifications < groups * 2:
        raise ValueError(f"--notifications ({notifications}) must be at least 2 x --groups ({groups})")
    if notifications % (groups * 2):
        raise ValueError(
            f"--notifications ({notifications}) must be a multiple of 2 x --groups ({groups}) "
            "so every group gets the same number of HA pairs"
        )
    batches = notifications // (groups * 2)
    return LoadShape(groups=groups, alerts_per_group=batches, batches=batches, replicas=2)


def storm_shape(alerts: int, groups: int, batches: int) -> LoadShape:
    if alerts % groups:
        raise ValueError(f"--alerts ({alerts}) must be a multiple of --groups ({groups})")
    return LoadShape(groups=groups, alerts_per_group=alerts // groups, batches=batches, replicas=2)


def _client(target: Target) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=target.concurrency, max_keepalive_connections=target.concurrency)
    return httpx.AsyncClient(
        base_url=target.url,
        timeout=target.retry.request_timeout_s,
        limits=limits,
        trust_env=False,
        headers=auth_headers(target.operator_token),  # reads; alerts carry the sender token
    )


@dataclass(frozen=True)
class _Run:
    run_id: str
    plan: list[Notification]
    sent: SendReport
    found: RunIncidents
    floor: IngestFloor | None
    load: Load
    memory: Memory
    background: OpenIncidents | None

    def shared_figures(self, target: Target, shape: LoadShape) -> dict[str, Any]:
        """The fields IngestResult and StormResult both report, computed the same way (the models
        keep their own field order, which is the order the CLI prints)."""
        plan, sent = self.plan, self.sent
        return {
            **self.comparison(),
            "run_id": self.run_id,
            "url": target.url,
            "notifications": len(plan),
            "groups": shape.groups,
            "ha_duplicates": len(plan) - shape.groups * shape.batches,
            "concurrency": target.concurrency,
            "wall_s": round(sent.wall_s, 3),
            "notifications_per_s": round(len(plan) / sent.wall_s, 1),
            "p50_ms": sent.latency_ms(0.5),
            "p99_ms": sent.latency_ms(0.99),
            "retries": sum(d.attempts - 1 for d in sent.deliveries),
            "incident_runs": self.found.runs,
            "incident_states": self.found.states,
        }

    def comparison(self) -> dict[str, Any]:
        """The floor, the ratios to it and the targets they meet or miss, the load and memory."""
        figures: dict[str, Any] = {
            "floor": self.floor,
            "load": self.load,
            "memory": self.memory,
            "open_incidents": self.background,
        }
        floor, sent = self.floor, self.sent
        if floor is None or not floor.calls_per_s or not floor.p99_ms or not sent.accepted:
            return figures
        throughput = len(self.plan) / sent.wall_s / floor.calls_per_s
        p99 = (sent.latency_ms(0.99) or 0.0) / floor.p99_ms
        misses = []
        if throughput < TARGET_THROUGHPUT_RATIO:
            misses.append(f"throughput {throughput:.2f}x the floor (target >= {TARGET_THROUGHPUT_RATIO}x)")
        if p99 > TARGET_P99_RATIO:
            misses.append(f"p99 {p99:.2f}x the floor's (target <= {TARGET_P99_RATIO}x)")
        return {
            **figures,
            "throughput_ratio": round(throughput, 2),
            "p99_ratio": round(p99, 2),
            "targets_met": not misses,
            "target_misses": misses,
        }

    def lost_notifications(self) -> list[str]:
        """The problem to report when notifications were given up on, if any were."""
        if not self.sent.lost:
            return []
        first = self.sent.lost[0]
        return [f"{len(self.sent.lost)} notifications lost (first: HTTP {first.status}: {first.error})"]


async def _send_run(client: httpx.AsyncClient, target: Target, shape: LoadShape) -> _Run:
    """Open the background incidents, measure the floor, send one run's notifications to backout
    and list the incidents they opened. The floor goes first, on a machine backout's load has not
    warmed: the harder floor to be measured against."""
    await check_api(client, target.token)
    if target.floor and target.temporal_address is None:
        raise BenchError(
            "the floor needs the Temporal server backout uses: pass --temporal-address "
            "(or BACKOUT_TEMPORAL_ADDRESS), or --no-floor"
        )
    run_id = uuid.uuid4().hex[:12]
    background = None
    if target.open_incidents:
        background = await open_background(
            client, target.token, target.open_incidents, background_run_id(), target.concurrency, target.retry
        )
    load = Load.now()
    plan = plan_notifications(shape, run_id, datetime.now(UTC))
    floor = None
    if target.floor and target.temporal_address is not None:
        floor = await measure_floor(
            target.temporal_address, target.temporal_namespace, plan, target.concurrency, run_id
        )
    sent = await send_all(client, plan, target.token, target.concurrency, target.retry)
    load = load.ended()
    answered = [d.incident_id for d in sent.accepted if d.incident_id]
    found = await incidents_of_run(client, run_id, shape.groups, target.list_wait_s, answered)
    memory = await read_memory(client)
    if background is not None:
        background = await still_open(client, background)
    return _Run(run_id, plan, sent, found, floor, load, memory, background)


async def run_ingest(target: Target, notifications: int, groups: int) -> IngestResult:
    shape = ingest_shape(notifications, groups)
    async with _client(target) as client:
        run = await _send_run(client, target, shape)
    found = run.found
    problems: list[str] = []
    if len(found.ids) != shape.groups:
        problems.append(f"{len(found.ids)} incidents for {shape.groups} groups")
    problems += run.lost_notifications()
    return IngestResult(
        **run.shared_figures(target, shape),
        incidents=len(found.ids),
        lost=len(run.sent.lost),
        ok=not problems,
        problems=problems,
    )


async def run_storm(target: Target, alerts: int, groups: int, batches: int) -> StormResult:
    shape = storm_shape(alerts, groups, batches)
    async with _client(target) as client:
        run = await _send_run(client, target, shape)
        held = await alerts_held(client, run.found.ids, target.concurrency)
    plan, sent, found = run.plan, run.sent, run.found
    sent_fingerprints = {fp for notification in plan for fp in notification.fingerprints}
    delivered = [plan[d.notification] for d in sent.accepted]
    deliveries = sum(len(n.fingerprints) for n in delivered)
    lost_alerts = len(sent_fingerprints - held)
    problems: list[str] = []
    if len(found.ids) != shape.groups:
        problems.append(f"{len(found.ids)} incidents opened for {shape.groups} groups")
    if lost_alerts:
        problems.append(f"{lost_alerts} of {len(sent_fingerprints)} alerts held by no incident")
    problems += run.lost_notifications()
    return StormResult(
        **run.shared_figures(target, shape),
        alerts=len(sent_fingerprints),
        alert_deliveries=sum(len(n.fingerprints) for n in plan),
        alerts_per_s=round(len(sent_fingerprints) / sent.wall_s, 1),
        alert_deliveries_per_s=round(deliveries / sent.wall_s, 1),
        incidents_opened=len(found.ids),
        # Deliveries that created nothing new: HA copies and re-sent alerts of growing groups.
        duplicates_absorbed=deliveries - len(held & sent_fingerprints),
        alerts_held=len(held & sent_fingerprints),
        alerts_lost=lost_alerts,
        notifications_lost=len(sent.lost),
        ok=not problems,
        problems=problems,
    )
