"""Alertmanager v4 notifications shaped like a real storm: cumulative groups, HA duplicates.

Alertmanager sends a group's first notification after group_wait and, as more alerts
join, a new notification every group_interval carrying the whole group so far. With two
Alertmanager replicas (HA) each notification arrives twice. `plan_notifications` builds
exactly that, batch by batch, so a receiver sees the order it would see in production.
"""

from __future__ import annotations

import hashlib
import random
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

BENCH_NAMESPACE_PREFIX = "backout-bench"
ALERTNAME = "BackoutBenchAlert"
# Alertmanager's "no end" timestamp for firing alerts.
ZERO_TIME = "0001-01-01T00:00:00Z"


class LoadShape(BaseModel):
    """How many groups, alerts per group, notification batches per group and HA replicas."""

    groups: int = Field(ge=1)
    alerts_per_group: int = Field(ge=1)
    batches: int = Field(ge=1, description="distinct notifications per group (the group grows each time)")
    replicas: int = Field(default=2, ge=1, description="Alertmanager HA replicas sending each notification")

    @model_validator(mode="after")
    def _batches_fit(self) -> LoadShape:
        if self.batches > self.alerts_per_group:
            raise ValueError(
                f"batches ({self.batches}) cannot exceed alerts per group ({self.alerts_per_group}): "
                "every batch adds at least one alert"
            )
        return self

    @property
    def notifications(self) -> int:
        return self.groups * self.batches * self.replicas

    @property
    def distinct_alerts(self) -> int:
        return self.groups * self.alerts_per_group


class Notification(BaseModel):
    group: int
    batch: int
    replica: int
    fingerprints: list[str]
    body: dict[str, Any]


def bench_namespace(run_id: str) -> str:
    """Every incident of a run lives in this namespace, so the run's incidents are easy to count."""
    return f"{BENCH_NAMESPACE_PREFIX}-{run_id}"


def bench_service(group: int) -> str:
    """One service per group: backout keys incidents by namespace + service."""
    return f"svc-g{group:05d}"


def _fingerprint(labels: dict[str, str]) -> str:
    canonical = "\x1f".join(f"{key}={value}" for key, value in sorted(labels.items()))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _group_key(group_labels: dict[str, str]) -> str:
    inner = ", ".join(f'{key}="{value}"' for key, value in sorted(group_labels.items()))
    return "{}:{" + inner + "}"


def _alerts_in_batch(shape: LoadShape, batch: int) -> int:
    """Cumulative alert count after `batch` (0-based): the last batch holds the whole group."""
    return max(1, (shape.alerts_per_group * (batch + 1)) // shape.batches)


def plan_notifications(
    shape: LoadShape, run_id: str, started_at: datetime, seed: int = 7
) -> list[Notification]:
    """All notifications of the run, batch-major and shuffled within a batch (replicas race)."""
    namespace = bench_namespace(run_id)
    starts_at = started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    rng = random.Random(seed)
    planned: list[Notification] = []
    for batch in range(shape.batches):
        in_batch: list[Notification] = []
        for group in range(shape.groups):
            group_labels = {
                "bench_group": f"g{group:05d}",
                "bench_run": run_id,
                "namespace": namespace,
                "service": bench_service(group),
            }
            alerts = []
            for index in range(_alerts_in_batch(shape, batch)):
                labels = {
                    **group_labels,
                    "alertname": ALERTNAME,
                    "instance": f"i{index:05d}",
                    "severity": "info",
                }
                alerts.append(
                    {
                        "status": "firing",
                        "labels": labels,
                        "annotations": {"summary": f"backout bench run {run_id}"},
                        "startsAt": starts_at,
                        "endsAt": ZERO_TIME,
                        "generatorURL": "http://bench.invalid/graph",
                        "fingerprint": _fingerprint(labels),
                    }
                )
            common = {**group_labels, "alertname": ALERTNAME, "severity": "info"}
            for replica in range(shape.replicas):
                body = {
                    "version": "4",
                    "groupKey": _group_key(group_labels),
                    "truncatedAlerts": 0,
                    "status": "firing",
                    "receiver": "backout",
                    "groupLabels": group_labels,
                    "commonLabels": common,
                    "commonAnnotations": {"summary": f"backout bench run {run_id}"},
                    "externalURL": f"http://alertmanager-{replica}.bench.invalid:9093",
                    "alerts": alerts,
                }
                in_batch.append(
                    Notification(
                        group=group,
                        batch=batch,
                        replica=replica,
                        fingerprints=[alert["fingerprint"] for alert in alerts],
                        body=body,
                    )
                )
        rng.shuffle(in_batch)
        planned.extend(in_batch)
    return planned
