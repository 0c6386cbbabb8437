"""Changes reported through POST /v1/changes (CI/CD, prompt registries, corpus pipelines, flags).

A SQLite file under the state directory: the API writes, the context activity reads.
Idempotent on the change id: the same id with the same content is accepted again, the
same id with different content is a conflict the caller must hear about.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Literal

from incidents.bundle import Change

StoreOutcome = Literal["created", "unchanged", "conflict"]


class ChangeStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS changes ("
            " id TEXT PRIMARY KEY, namespace TEXT, service TEXT NOT NULL,"
            " started_at REAL NOT NULL, body TEXT NOT NULL, received_at REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS changes_started ON changes(started_at)")
        self._db.commit()

    def put(self, change: Change, received_at: datetime) -> StoreOutcome:
        body = change.model_dump_json()
        with self._lock:
            row = self._db.execute("SELECT body FROM changes WHERE id = ?", (change.id,)).fetchone()
            if row is not None:
                same = Change.model_validate_json(row[0]) == change
                return "unchanged" if same else "conflict"
            self._db.execute(
                "INSERT INTO changes (id, namespace, service, started_at, body, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    change.id,
                    change.namespace,
                    change.service,
                    change.started_at.timestamp(),
                    body,
                    received_at.timestamp(),
                ),
            )
            self._db.commit()
        return "created"

    def get(self, change_id: str) -> Change | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM changes WHERE id = ?", (change_id,)).fetchone()
        return Change.model_validate_json(row[0]) if row else None

    def list(
        self, since: datetime, until: datetime | None = None, namespace: str | None = None
    ) -> list[Change]:
        query = "SELECT body FROM changes WHERE started_at >= ?"
        params: list[object] = [since.timestamp()]
        if until is not None:
            query += " AND started_at <= ?"
            params.append(until.timestamp())
        if namespace is not None:
            # Strictly that namespace: a change stored without one (before reported changes had to
            # name theirs) would otherwise be a candidate in every incident.
            query += " AND namespace = ?"
            params.append(namespace)
        query += " ORDER BY started_at"
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        return [Change.model_validate_json(row[0]) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def change_to_json(change: Change) -> dict[str, object]:
    return json.loads(change.model_dump_json())
