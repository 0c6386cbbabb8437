"""The store every API replica and worker shares: changes reported through POST /v1/changes (CI/CD,
prompt registries, corpus pipelines, flags) and the culprit labels operators confirm.

A SQLite file under the state directory by default: one machine (`backout up`), where the API and
the worker share that directory. PostgreSQL when `database_url` is set: many replicas (the Helm
chart), whose pods share no disk, and a change reported to one API replica must reach the worker
that collects an incident's context and every replica's GET /v1/changes.

Idempotent on the change id across processes: the same id with the same content is accepted again,
the same id with different content is a conflict the caller must hear about. The insert is one
`INSERT ... ON CONFLICT DO NOTHING`, so two replicas taking the same id at once both answer
correctly (one "created", the other "unchanged" or "conflict"). The connection is opened on first
use and reopened after it breaks: the API starts (and answers 503) while the database is away.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import sqlite3
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from config.redact import MASK, redact_text
from incidents.bundle import Change

if TYPE_CHECKING:
    from config import Settings

StoreOutcome = Literal["created", "unchanged", "conflict"]
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 15000
_SCHEMA_LOCK = 0x6261636B6F7574  # "backout": the advisory lock held while creating the tables

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS changes ("
    " id TEXT PRIMARY KEY, namespace TEXT, service TEXT NOT NULL,"
    " started_at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL, received_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS changes_started ON changes(started_at)",
    "CREATE TABLE IF NOT EXISTS culprit_labels ("
    " id TEXT PRIMARY KEY, incident_id TEXT NOT NULL, change_id TEXT NOT NULL,"
    " recorded_at DOUBLE PRECISION NOT NULL, record TEXT NOT NULL)",
)


class StoreUnavailable(RuntimeError):
    """The shared store cannot be reached or used. `reason` is short and safe to show a caller (no
    host, user or password); the message, for logs, also says where (a URL without its password)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


# SQLSTATE classes of PostgreSQL errors that say what is wrong with the configuration.
_REASONS = {
    "28P01": "the database refused the credentials",
    "28000": "the database refused the credentials",
    "3D000": "the database does not exist",
    "42501": "the database user lacks a privilege",
    "57P03": "the database is starting up or shutting down",
}

_CONNECT_REASONS = (
    ("password authentication failed", "the database refused the credentials"),
    ("no pg_hba.conf entry", "the database refused the credentials"),
    ('role "', "the database refused the credentials"),
    ('database "', "the database does not exist"),
)


class ChangeStore:
    """Reported changes and culprit labels, in SQLite (`path`) or PostgreSQL (`url`)."""

    def __init__(self, path: Path | None = None, url: str | None = None) -> None:
        if (path is None) == (url is None):
            raise ValueError("a change store is a SQLite file or a PostgreSQL URL: give one of them")
        self._path = path
        self._url = url
        self._lock = threading.Lock()
        self._db: Any = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    @classmethod
    def of(cls, settings: Settings) -> ChangeStore:
        """The settings' store: PostgreSQL at `database_url`, else the SQLite file in the state dir."""
        if settings.database_url is not None:
            return cls(url=settings.database_url.get_secret_value())
        return cls(path=settings.change_store_file)

    @property
    def shared(self) -> bool:
        """Whether processes on other machines see this store (PostgreSQL)."""
        return self._url is not None

    @property
    def where(self) -> str:
        """Where the store is, for messages (a PostgreSQL URL without its password)."""
        if self._path is not None:
            return str(self._path)
        return redact_text(self._url or "")

    # --- connection ------------------------------------------------------------------------

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        reason = _REASONS.get(getattr(exc, "sqlstate", None) or "", "")
        text = str(exc)
        if not reason:  # a refused connection carries no SQLSTATE, only the server's words
            reason = next((why for words, why in _CONNECT_REASONS if words in text), "")
        if not reason:
            reason = "the database is unreachable" if _connection_error(exc) else "the database failed"
        detail = redact_text(text.strip())
        if self._url:  # a server may echo parts of the connection string back
            password = _password(self._url)
            if password:
                detail = detail.replace(password, MASK)
        return StoreUnavailable(f"the shared store at {self.where}: {reason}: {detail}", reason)

    def _connect(self) -> Any:
        if self._path is not None:
            local = sqlite3.connect(str(self._path), check_same_thread=False, timeout=10.0)
            local.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                local.execute(statement)
            local.commit()
            return local
        import psycopg

        try:
            # A database that stops answering (a partition, not a refusal) fails the request within
            # seconds too: TCP keepalives notice the dead peer, the statement timeout a stuck one.
            db = psycopg.connect(
                self._url or "",
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            )
        except psycopg.Error as exc:
            raise self._unavailable(exc) from None
        try:
            # Replicas starting together would race on CREATE TABLE IF NOT EXISTS (PostgreSQL
            # answers one of them with a unique violation in its catalog): one at a time.
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    db.execute(statement)
        except psycopg.Error as exc:
            db.close()
            raise self._unavailable(exc) from None
        return db

    def _run(self, query: str, params: tuple[Any, ...] = (), fetch: str = "") -> Any:
        """One statement (`?` placeholders) under the lock. A connection that broke since its last
        use (the database restarted, a proxy cut it) is replaced once; the statements are
        idempotent, so running one again after a lost answer changes nothing."""
        if self._path is not None:
            with self._lock:
                if self._db is None:
                    self._db = self._connect()
                cursor = self._db.execute(query, params)
                result = _fetched(cursor, fetch)
                self._db.commit()
                return result
        import psycopg

        query = query.replace("?", "%s")
        with self._lock:
            for attempt in (1, 2):
                if self._db is None:
                    self._db = self._connect()
                try:
                    return _fetched(self._db.execute(query, params), fetch)
                except psycopg.Error as exc:
                    broken = _connection_error(exc) or self._db.closed
                    if broken:
                        self._drop()
                    if attempt == 2 or not broken:
                        raise self._unavailable(exc) from None
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        if self._db is not None:
            with contextlib.suppress(Exception):  # already broken
                self._db.close()
            self._db = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    # --- reported changes --------------------------------------------------------------------

    def put(self, change: Change, received_at: datetime) -> StoreOutcome:
        inserted = self._run(
            "INSERT INTO changes (id, namespace, service, started_at, body, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (
                change.id,
                change.namespace,
                change.service,
                change.started_at.timestamp(),
                change.model_dump_json(),
                received_at.timestamp(),
            ),
            fetch="rowcount",
        )
        if inserted:
            return "created"
        stored = self.get(change.id)
        return "unchanged" if stored == change else "conflict"

    def get(self, change_id: str) -> Change | None:
        row = self._run("SELECT body FROM changes WHERE id = ?", (change_id,), fetch="one")
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
        query += " ORDER BY started_at, id"
        rows = self._run(query, tuple(params), fetch="all")
        return [Change.model_validate_json(row[0]) for row in rows]

    # --- culprit labels ------------------------------------------------------------------------

    def add_label(self, incident_id: str, change_id: str, recorded_at: datetime, record: str) -> None:
        """One operator label (attribution.feedback's record as JSON), kept for training."""
        self._run(
            "INSERT INTO culprit_labels (id, incident_id, change_id, recorded_at, record)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (uuid.uuid4().hex, incident_id, change_id, recorded_at.timestamp(), record),
        )

    def labels(self) -> builtins.list[str]:
        """Every label as recorded (JSON), oldest first."""
        rows = self._run("SELECT record FROM culprit_labels ORDER BY recorded_at, id", fetch="all")
        return [row[0] for row in rows]


def _fetched(cursor: Any, fetch: str) -> Any:
    if fetch == "all":
        return cursor.fetchall()
    if fetch == "one":
        return cursor.fetchone()
    if fetch == "rowcount":
        return cursor.rowcount
    return None


def _password(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    try:
        return str(conninfo_to_dict(url).get("password") or "")
    except Exception:  # not parseable: nothing to mask beyond redact_text
        return ""


def _connection_error(exc: Exception) -> bool:
    import psycopg

    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def change_to_json(change: Change) -> dict[str, object]:
    return json.loads(change.model_dump_json())
