"""The in-cluster action log behind idempotency and the remediation guards.

Each namespace backout acts in gets a ConfigMap `backout-actions` holding one JSON
entry per applied remediation. It answers three questions without any database:
was this exact request applied already (retry), which versions did this incident
roll away from (loop guard), and how many rollbacks hit this namespace in the last
hour (rate cap).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client import V1ConfigMap, V1ObjectMeta
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel

from activities.kube.client import KubeApis, retry_on_conflict
from incidents.remediation import RemediationResult

ACTION_LOG_NAME = "backout-actions"
KEEP_FOR = timedelta(days=1)
ROLLBACK_OPERATIONS = frozenset({"rollback"})


class ActionLogEntry(BaseModel):
    key: str
    incident_id: str
    operation: str
    target: str
    at: datetime
    rolled_away_from: str | None = None
    rolled_to: str | None = None
    result: RemediationResult


def read_action_log(apis: KubeApis, namespace: str) -> list[ActionLogEntry]:
    try:
        config_map = apis.core.read_namespaced_config_map(ACTION_LOG_NAME, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise
    return _entries(config_map)


def action_log_among(config_maps: list[Any]) -> list[ActionLogEntry]:
    """The action log as found in a list of its namespace's ConfigMaps (none there: no entries)."""
    return next((_entries(item) for item in config_maps if item.metadata.name == ACTION_LOG_NAME), [])


def _entries(config_map: Any) -> list[ActionLogEntry]:
    return [ActionLogEntry.model_validate_json(value) for value in (config_map.data or {}).values()]


def find_entry(entries: list[ActionLogEntry], key: str) -> ActionLogEntry | None:
    return next((entry for entry in entries if entry.key == key), None)


def rolled_away_from(entries: list[ActionLogEntry], incident_id: str, target: str) -> set[str]:
    return {
        entry.rolled_away_from
        for entry in entries
        if entry.incident_id == incident_id and entry.target == target and entry.rolled_away_from is not None
    }


def rollbacks_in_last_hour(entries: list[ActionLogEntry], now: datetime | None = None) -> int:
    cutoff = (now or datetime.now(UTC)) - timedelta(hours=1)
    return sum(
        1
        for entry in entries
        if entry.operation in ROLLBACK_OPERATIONS and entry.result.applied and entry.at >= cutoff
    )


def append_entry(apis: KubeApis, namespace: str, entry: ActionLogEntry) -> None:
    """Add `entry` (idempotently, by key), dropping entries older than a day; retries on conflict."""

    def write() -> None:
        cutoff = datetime.now(UTC) - KEEP_FOR
        try:
            current = apis.core.read_namespaced_config_map(ACTION_LOG_NAME, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = V1ConfigMap(
                metadata=V1ObjectMeta(
                    name=ACTION_LOG_NAME,
                    namespace=namespace,
                    labels={"app.kubernetes.io/managed-by": "backout"},
                ),
                data={entry.key: entry.model_dump_json()},
            )
            apis.core.create_namespaced_config_map(namespace, body)
            return
        data = {
            key: value
            for key, value in (current.data or {}).items()
            if ActionLogEntry.model_validate_json(value).at >= cutoff
        }
        data[entry.key] = entry.model_dump_json()
        current.data = data
        apis.core.replace_namespaced_config_map(ACTION_LOG_NAME, namespace, current)

    retry_on_conflict(write)
