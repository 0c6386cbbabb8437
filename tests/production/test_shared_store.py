"""The shared store (`database_url`) on the PostgreSQL that `backout temporal up` runs: reported
changes and culprit labels that every API replica and worker must agree on, though no two of them
share a disk. Replicas racing on one change id (and on creating the tables) store it once; a
connection the database cut is replaced; while the database is away or refuses, the API answers
503 with the reason and records nothing, the worker's incident notes it and goes on, and the
change posted again once the database is back is there for everyone."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from activities.changes_store import ChangeStore, StoreUnavailable
from activities.context import build_bundle
from api.app import create_app
from config import Settings
from devstack.process import free_port
from devstack.replicas import LoadBalancer
from devstack.temporal_sql import TemporalSqlState, store_url
from incidents.bundle import Change
from incidents.models import ContextRequest

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

REPORTER = "reporter-token-for-the-store-tests"
OPERATOR = "operator-token-for-the-store-tests"
NAMESPACE = "prod"


@pytest.fixture
def database(production_temporal: TemporalSqlState) -> Iterator[str]:
    """A new, empty database on the session's PostgreSQL (as the server's user, like
    `backout temporal up` creates `backout`), dropped afterwards."""
    name = f"store_{uuid.uuid4().hex[:10]}"
    admin_url = store_url(production_temporal, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield store_url(production_temporal, name)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _at_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[0] + f"@127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = parts.netloc.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}"))


def _change(**fields: Any) -> Change:
    values: dict[str, Any] = {
        "id": f"deploy-{uuid.uuid4().hex[:8]}",
        "service": "rag-api",
        "namespace": NAMESPACE,
        "kind": "prompt",
        "started_at": datetime.now(UTC) - timedelta(minutes=2),
        "from_version": "p1",
        "to_version": "p2",
    }
    values.update(fields)
    return Change.model_validate(values)


def test_replicas_racing_on_one_change_id_store_it_once(database: str) -> None:
    """Six stores (six replicas) open a new database and report the same change at once: the tables
    are created once and the change stored once; each store answers as if it were alone."""
    replicas = 6
    stores = [ChangeStore(url=database) for _ in range(replicas)]
    change, now = _change(), datetime.now(UTC)
    start = threading.Barrier(replicas)

    def report(store: ChangeStore) -> str:
        start.wait()
        return store.put(change, now)

    try:
        with ThreadPoolExecutor(replicas) as pool:
            outcomes = sorted(pool.map(report, stores))
        assert outcomes == ["created"] + ["unchanged"] * (replicas - 1)
        assert stores[1].put(change.model_copy(update={"to_version": "p3"}), now) == "conflict"
        assert stores[2].get(change.id) == change
        assert stores[3].list(now - timedelta(hours=1), namespace=NAMESPACE) == [change]
        assert stores[4].list(now - timedelta(hours=1), namespace="staging") == []
    finally:
        for store in stores:
            store.close()


def test_labels_from_every_replica_are_one_list(database: str) -> None:
    first, second = ChangeStore(url=database), ChangeStore(url=database)
    try:
        recorded = datetime.now(UTC)
        first.add_label("incident-a", "deploy-1", recorded, '{"incident_id": "incident-a"}')
        second.add_label(
            "incident-b", "deploy-2", recorded + timedelta(seconds=1), '{"incident_id": "incident-b"}'
        )
        assert (
            first.labels()
            == second.labels()
            == [
                '{"incident_id": "incident-a"}',
                '{"incident_id": "incident-b"}',
            ]
        )
    finally:
        first.close()
        second.close()


def test_a_connection_the_database_cut_is_replaced(database: str) -> None:
    store = ChangeStore(url=database)
    try:
        change = _change()
        assert store.put(change, datetime.now(UTC)) == "created"
        with psycopg.connect(database, autocommit=True) as admin:
            cut = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert cut == (1,), "the store's one connection was cut"
        assert store.get(change.id) == change
    finally:
        store.close()


def _never_temporal() -> NoReturn:
    raise AssertionError("reporting a change needs no Temporal")


def _api(settings: Settings) -> httpx.AsyncClient:
    app = create_app(settings, _never_temporal)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


def _settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        state_dir=tmp_path,
        allowed_namespaces=[NAMESPACE],
        reporter_token=SecretStr(REPORTER),
        operator_token=SecretStr(OPERATOR),
        database_url=SecretStr(database_url),
    )


async def test_the_api_answers_503_with_the_reason_while_the_store_is_away_and_loses_nothing(
    database: str, tmp_path: Path
) -> None:
    """The API starts while its database is away (nothing listens at its address): a change
    posted then is refused with 503, a reason and Retry-After, and nothing is recorded; when the
    database is back at that address (a proxy opens there) the sender's retry is recorded once."""
    port = free_port()
    settings = _settings(tmp_path, _at_port(database, port))
    change = _change().model_dump(mode="json", exclude_none=True)
    reporter = {"Authorization": f"Bearer {REPORTER}"}
    operator = {"Authorization": f"Bearer {OPERATOR}"}
    async with _api(settings) as http:
        refused = await http.post("/v1/changes", json=change, headers=reporter)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "store_unavailable"
        assert refused.json()["reason"] == "the database is unreachable"
        assert "nothing was recorded" in refused.json()["detail"]
        assert refused.headers["Retry-After"] == "5"
        listing = await http.get("/v1/changes", params={"namespace": NAMESPACE}, headers=operator)
        assert listing.status_code == 503 and listing.json()["reason"] == "the database is unreachable"

        proxy = LoadBalancer([("127.0.0.1", int(urlsplit(database).port or 5432))], port=port).start()
        try:
            retried = await http.post("/v1/changes", json=change, headers=reporter)
            assert retried.status_code == 201, retried.text
            again = await http.post("/v1/changes", json=change, headers=reporter)
            assert again.status_code == 200 and again.json()["status"] == "unchanged", again.text
        finally:
            proxy.stop()
    store = ChangeStore(url=database)
    try:
        assert [c.id for c in store.list(datetime.now(UTC) - timedelta(hours=1))] == [change["id"]]
    finally:
        store.close()


async def test_credentials_the_database_refuses_are_named_but_never_shown(
    database: str, tmp_path: Path
) -> None:
    password = "not-the-password-" + uuid.uuid4().hex[:6]
    settings = _settings(tmp_path, _with_password(database, password))
    async with _api(settings) as http:
        refused = await http.post(
            "/v1/changes",
            json=_change().model_dump(mode="json"),
            headers={"Authorization": f"Bearer {REPORTER}"},
        )
    assert refused.status_code == 503, refused.text
    assert refused.json()["reason"] == "the database refused the credentials"
    assert password not in refused.text and "127.0.0.1" not in refused.text
    with pytest.raises(StoreUnavailable) as raised:
        ChangeStore(url=_with_password(database, password)).get("any")
    assert password not in str(raised.value) and "the database refused the credentials" in str(raised.value)


def test_an_incident_collects_the_shared_changes_and_notes_a_store_that_is_away(
    database: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    change = _change()
    store = ChangeStore(url=database)
    try:
        store.put(change, now)
    finally:
        store.close()
    request = ContextRequest(
        incident_id="incident-prod-rag-api",
        service="rag-api",
        namespace=NAMESPACE,
        source="alertmanager",
        detected_at=now,
    )
    collected = build_bundle(_settings(tmp_path / "up", database), request, now)
    assert [c.id for c in collected.bundle.changes] == [change.id]

    away = _settings(tmp_path / "away", _at_port(database, free_port()))
    noted = build_bundle(away, request, now)
    assert noted.bundle.changes == []
    assert any(
        note.startswith("reported changes unavailable:") and "the database is unreachable" in note
        for note in noted.notes
    ), noted.notes
