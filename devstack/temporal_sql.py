"""Temporal for production on one machine: PostgreSQL (Debian) and `temporal-server` (Go module).

`backout temporal up` starts both on loopback, detached, and returns once a real Temporal
client answers: its own PostgreSQL cluster (`initdb`/`pg_ctl`, a data directory and port of
its own; as the `postgres` system user when run as root, since PostgreSQL refuses root), the
schema of the server's own module applied with its SQL tool (databases `temporal` and
`temporal_visibility`, `schema/postgresql/v12/...`), then the server, configured through the
environment of its embedded config template (the same variables the `temporalio/server`
image takes, so docker-compose.yml and this runner configure one server the same way), and
the backout namespace registered. Pids, ports and the database password live in
`<state_dir>/temporal.json` (mode 0600) for `status` and `down`. Data survives `down`;
`down --purge` removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import hashlib
import json
import os
import pwd
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from google.protobuf.duration_pb2 import Duration
from pydantic import BaseModel
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from devstack import gobuild
from devstack.cluster.processes import free_port, pid_alive, reap
from devstack.defaults import TEMPORAL_SQL_STATE_DIR
from devstack.tools import TEMPORAL

DEFAULT_STATE_DIR = TEMPORAL_SQL_STATE_DIR
DATABASES = ("temporal", "temporal_visibility")
# backout's own shared store (reported changes, culprit labels: BACKOUT_DATABASE_URL) on the same server.
STORE_DATABASE = "backout"
DB_USER = "temporal"
SQL_PLUGIN = "postgres12"
POSTGRES_OS_USER = "postgres"
# Where root's PostgreSQL data goes when the `postgres` user cannot reach the state directory.
ROOT_DATA_PARENT = Path("/var/tmp/backout-postgres")
SERVER_PORT_VARIABLES = (
    "FRONTEND_HTTP_PORT",
    "FRONTEND_MEMBERSHIP_PORT",
    "HISTORY_GRPC_PORT",
    "HISTORY_MEMBERSHIP_PORT",
    "MATCHING_GRPC_PORT",
    "MATCHING_MEMBERSHIP_PORT",
    "WORKER_GRPC_PORT",
    "WORKER_MEMBERSHIP_PORT",
)
PORT_RACE_ATTEMPTS = 3
LOW_PORT_RANGE = (20000, 32000)
# The server polls this file: edit it in the state dir to tune a running server (keys as in
# the server module's common/dynamicconfig/constants.go). Empty: every default.
DYNAMIC_CONFIG = "# temporal-server dynamic config; e.g.\n# frontend.namespaceRPS:\n#   - value: 2400\n{}\n"


def free_low_port(attempts: int = 200) -> int:
    """A free loopback port below 32768: the server records its membership ports in a SQL
    smallint column, so the OS's ephemeral range (32768 and up) fails at startup."""
    for _ in range(attempts):
        port = random.randint(LOW_PORT_RANGE[0], LOW_PORT_RANGE[1])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise TemporalSqlError(f"no free port in {LOW_PORT_RANGE[0]}-{LOW_PORT_RANGE[1]} after {attempts} tries")


class TemporalSqlError(RuntimeError):
    """PostgreSQL or the Temporal server could not be set up, started or reached; says why."""


class TemporalSqlState(BaseModel):
    """What `up` started, for `status`, `down` and clients (`address`, `namespace`)."""

    server_version: str
    address: str
    namespace: str
    metrics_url: str
    postgres_port: int
    postgres_data_dir: str
    postgres_os_user: str | None
    postgres_password: str
    postgres_bin_dir: str
    server_pid: int
    server_log: str
    history_shards: int


class TemporalSqlStatus(BaseModel):
    state_dir: str
    up: bool = False
    postgres_running: bool = False
    server_running: bool = False
    healthy: bool = False
    address: str | None = None
    namespace: str | None = None
    server_version: str | None = None
    problem: str | None = None


def postgres_bin_dir() -> Path:
    """The newest PostgreSQL server binaries Debian installed (`postgresql` package)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise TemporalSqlError(
        "PostgreSQL is not installed: `apt-get install postgresql` (or `make system-deps`)"
    )


def _os_user() -> str | None:
    """None when we may run PostgreSQL as ourselves; the `postgres` user when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_OS_USER)
    except KeyError as exc:
        raise TemporalSqlError(
            "running as root, and PostgreSQL refuses to run as root: there is no `postgres` user to run "
            "it as (`apt-get install postgresql` creates it)"
        ) from exc
    return POSTGRES_OS_USER


def reachable_by(path: Path, user: str) -> bool:
    """Whether `user` may traverse every directory down to `path` (PostgreSQL must open its data dir)."""
    account = pwd.getpwnam(user)
    groups = {account.pw_gid, *(g.gr_gid for g in grp.getgrall() if user in g.gr_mem)}
    for directory in [path, *path.parents]:
        if not directory.exists():
            continue
        info = directory.stat()
        if info.st_uid == account.pw_uid:
            allowed = bool(info.st_mode & 0o100)
        elif info.st_gid in groups:
            allowed = bool(info.st_mode & 0o010)
        else:
            allowed = bool(info.st_mode & 0o001)
        if not allowed:
            return False
    return True


class TemporalSql:
    """Start, inspect and stop PostgreSQL plus one `temporal-server` rooted at `state_dir`."""

    def __init__(
        self,
        state_dir: Path | str = DEFAULT_STATE_DIR,
        namespace: str = "default",
        history_shards: int = 4,
        durable: bool = True,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.namespace = namespace
        self.history_shards = history_shards
        # Tests trade crash safety for speed (fsync off); a user's server keeps it.
        self.durable = durable
        self.state_file = self.state_dir / "temporal.json"
        self.password_file = self.state_dir / "postgres-password"
        self.server_log = self.state_dir / "temporal-server.log"
        self.dynamic_config_file = self.state_dir / "dynamicconfig.yaml"

    # --- paths -----------------------------------------------------------------------

    def postgres_home(self, os_user: str | None) -> Path:
        """The directory holding the data dir, socket and log: in the state dir when the
        PostgreSQL user can reach it, else one of root's own under /var/tmp keyed by it."""
        inside = self.state_dir / "postgres"
        if os_user is None or reachable_by(self.state_dir, os_user):
            return inside
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:16]
        return ROOT_DATA_PARENT / digest

    def read_state(self) -> TemporalSqlState | None:
        if not self.state_file.exists():
            return None
        return TemporalSqlState.model_validate_json(self.state_file.read_text(encoding="utf-8"))

    def _write_state(self, state: TemporalSqlState) -> None:
        self.state_file.touch(mode=0o600, exist_ok=True)
        self.state_file.chmod(0o600)
        self.state_file.write_text(state.model_dump_json(indent=2), encoding="utf-8")

    # --- lifecycle ---------------------------------------------------------------------

    def start(self, timeout_s: float = 180.0) -> TemporalSqlState:
        """Start (or find running) PostgreSQL and the server; returns once a client is served."""
        current = self.read_state()
        if current is not None:
            status = self.status()
            if status.healthy:
                return current
            self.stop()
        gobuild.build(TEMPORAL)  # instant when cached
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os_user = _os_user()
        bin_dir = postgres_bin_dir()
        home = self.postgres_home(os_user)
        password = self._password()
        fresh = self._init_postgres(bin_dir, home, os_user, password)
        for attempt in range(PORT_RACE_ATTEMPTS):
            port = free_port()
            try:
                self._pg_ctl(bin_dir, home, os_user, "start", port)
                break
            except TemporalSqlError as exc:
                if "already in use" not in str(exc) or attempt == PORT_RACE_ATTEMPTS - 1:
                    raise
        try:
            self._apply_schema(port, password, fresh)
            _create_database(port, password, STORE_DATABASE)
            return self._start_server(bin_dir, home, os_user, port, password, timeout_s)
        except BaseException:
            self.stop()
            raise

    def stop(self, purge: bool = False, timeout_s: float = 30.0) -> list[str]:
        """Stop the server (SIGTERM, then SIGKILL) and PostgreSQL (fast shutdown); `purge` wipes data."""
        stopped: list[str] = []
        state = self.read_state()
        os_user = _os_user()
        home = self.postgres_home(os_user)
        if state is not None and pid_alive(state.server_pid, "temporal-server"):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(state.server_pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while pid_alive(state.server_pid, "temporal-server") and time.monotonic() < deadline:
                reap(state.server_pid)
                time.sleep(0.1)
            if pid_alive(state.server_pid, "temporal-server"):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(state.server_pid, signal.SIGKILL)
            reap(state.server_pid)
            stopped.append("temporal-server")
        bin_dir = Path(state.postgres_bin_dir) if state is not None else None
        if (home / "data" / "postmaster.pid").exists():
            self._pg_ctl(bin_dir or postgres_bin_dir(), home, os_user, "stop")
            stopped.append("postgresql")
        self.state_file.unlink(missing_ok=True)
        if purge:
            shutil.rmtree(home, ignore_errors=True)
            self.password_file.unlink(missing_ok=True)
        return stopped

    def status(self) -> TemporalSqlStatus:
        state = self.read_state()
        result = TemporalSqlStatus(state_dir=str(self.state_dir))
        if state is None:
            return result
        result.address, result.namespace = state.address, state.namespace
        result.server_version = state.server_version
        result.server_running = pid_alive(state.server_pid, "temporal-server")
        result.postgres_running = self._postgres_running(state)
        result.up = result.server_running or result.postgres_running
        if result.server_running and result.postgres_running:
            try:
                asyncio.run(_check_client(state.address, state.namespace, timeout_s=5.0))
                result.healthy = True
            except TemporalSqlError as exc:
                result.problem = str(exc)
        return result

    @contextlib.contextmanager
    def running(self, timeout_s: float = 180.0) -> Iterator[TemporalSqlState]:
        """Started for the block, stopped after (tests)."""
        state = self.start(timeout_s=timeout_s)
        try:
            yield state
        finally:
            self.stop()

    # --- PostgreSQL --------------------------------------------------------------------

    def _password(self) -> str:
        if self.password_file.exists():
            return self.password_file.read_text(encoding="utf-8").strip()
        password = secrets.token_urlsafe(24)
        self.password_file.touch(mode=0o600)
        self.password_file.write_text(password, encoding="utf-8")
        return password

    def _as(self, os_user: str | None, args: list[str], timeout_s: float = 120.0) -> str:
        completed = subprocess.run(
            args,
            capture_output=True,
            text=True,
            user=os_user,
            group=pwd.getpwnam(os_user).pw_gid if os_user else None,
            extra_groups=[] if os_user else None,
            cwd="/" if os_user else None,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"},
            start_new_session=True,
            timeout=timeout_s,
        )
        if completed.returncode != 0:
            output = (completed.stderr.strip() or completed.stdout.strip())[-2000:]
            raise TemporalSqlError(
                f"{Path(args[0]).name} {args[1] if len(args) > 1 else ''} failed: {output}"
            )
        return completed.stdout

    def _init_postgres(self, bin_dir: Path, home: Path, os_user: str | None, password: str) -> bool:
        """initdb once (returns True then); an existing data dir is reused."""
        data = home / "data"
        if (data / "PG_VERSION").exists():
            return False
        if data.exists():
            shutil.rmtree(data)  # an initdb that died halfway
        home.mkdir(parents=True, exist_ok=True)
        (home / "socket").mkdir(exist_ok=True)
        pwfile = home / ".initdb-password"
        pwfile.write_text(password, encoding="utf-8")
        if os_user is not None:
            account = pwd.getpwnam(os_user)
            for path in (home, home / "socket", pwfile):
                os.chown(path, account.pw_uid, account.pw_gid)
        home.chmod(0o700)
        pwfile.chmod(0o600)
        try:
            self._as(
                os_user,
                [
                    str(bin_dir / "initdb"),
                    "-D", str(data),
                    "-U", DB_USER,
                    f"--pwfile={pwfile}",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        return True

    def _pg_ctl(
        self, bin_dir: Path, home: Path, os_user: str | None, action: str, port: int | None = None
    ) -> None:
        args = [str(bin_dir / "pg_ctl"), action, "-D", str(home / "data"), "-w", "-t", "60"]
        if action == "start":
            options = [
                f"-p {port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={home / 'socket'}",
                "-c max_connections=200",
            ]
            if not self.durable:
                options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            args += ["-l", str(home / "postgres.log"), "-o", " ".join(options)]
        else:
            args += ["-m", "fast"]
        try:
            self._as(os_user, args)
        except TemporalSqlError as exc:
            log = home / "postgres.log"
            tail = log.read_text(encoding="utf-8", errors="replace")[-1500:] if log.exists() else ""
            if "Address already in use" in tail or "could not bind" in tail:
                raise TemporalSqlError(f"postgres port {port} already in use: {tail}") from exc
            raise TemporalSqlError(f"{exc}\n{tail}") from exc

    def _postgres_running(self, state: TemporalSqlState) -> bool:
        completed = subprocess.run(
            [
                str(Path(state.postgres_bin_dir) / "pg_isready"),
                "-h",
                "127.0.0.1",
                "-p",
                str(state.postgres_port),
            ],
            capture_output=True,
        )
        return completed.returncode == 0

    def _sql_tool(self, port: int, password: str, database: str, *command: str) -> None:
        tool = gobuild.binary(TEMPORAL, "temporal-sql-tool")
        args = [
            str(tool),
            "--endpoint", "127.0.0.1",
            "--port", str(port),
            "--user", DB_USER,
            "--password", password,
            "--plugin", SQL_PLUGIN,
            "--database", database,
            *command,
        ]  # fmt: skip
        completed = subprocess.run(args, capture_output=True, text=True, timeout=300)
        if completed.returncode != 0:
            output = (completed.stderr.strip() or completed.stdout.strip())[-2000:]
            raise TemporalSqlError(f"temporal-sql-tool {' '.join(command)} on {database} failed: {output}")

    def _apply_schema(self, port: int, password: str, fresh: bool) -> None:
        """Create both databases on a fresh cluster; always bring the schema up to this server's."""
        schema = gobuild.module_file(TEMPORAL, "schema/postgresql/v12")
        for database, folder in zip(DATABASES, ("temporal", "visibility"), strict=True):
            if fresh:
                self._sql_tool(port, password, database, "create-database")
                self._sql_tool(port, password, database, "setup-schema", "-v", "0.0")
            self._sql_tool(
                port, password, database, "update-schema", "-d", str(schema / folder / "versioned")
            )

    # --- the server --------------------------------------------------------------------

    def server_environment(
        self, postgres_port: int, password: str, frontend_port: int, metrics_port: int
    ) -> dict[str, str]:
        """The variables of temporal-server's embedded config template (as in its container image)."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DB": SQL_PLUGIN,
            "DB_PORT": str(postgres_port),
            "POSTGRES_SEEDS": "127.0.0.1",
            "POSTGRES_USER": DB_USER,
            "POSTGRES_PWD": password,
            "DBNAME": DATABASES[0],
            "VISIBILITY_DBNAME": DATABASES[1],
            "BIND_ON_IP": "127.0.0.1",
            "NUM_HISTORY_SHARDS": str(self.history_shards),
            "LOG_LEVEL": "warn",
            "FRONTEND_GRPC_PORT": str(frontend_port),
            "PROMETHEUS_ENDPOINT": f"127.0.0.1:{metrics_port}",
            "TEMPORAL_ALLOW_NO_AUTH": "true",
            # The template's default names the container image's file; ours is in the state dir.
            "DYNAMIC_CONFIG_FILE_PATH": str(self.dynamic_config_file),
        }
        for variable in SERVER_PORT_VARIABLES:
            env[variable] = str(free_low_port())
        return env

    def _start_server(
        self, bin_dir: Path, home: Path, os_user: str | None, pg_port: int, password: str, timeout_s: float
    ) -> TemporalSqlState:
        binary = gobuild.binary(TEMPORAL, "temporal-server")
        if not self.dynamic_config_file.exists():
            self.dynamic_config_file.write_text(DYNAMIC_CONFIG, encoding="utf-8")
        frontend_port, metrics_port = free_low_port(), free_port()
        env = self.server_environment(pg_port, password, frontend_port, metrics_port)
        with self.server_log.open("ab") as log:
            process = subprocess.Popen(
                [str(binary), "start"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.state_dir,
            )
        state = TemporalSqlState(
            server_version=TEMPORAL.version,
            address=f"127.0.0.1:{frontend_port}",
            namespace=self.namespace,
            metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
            postgres_port=pg_port,
            postgres_data_dir=str(home / "data"),
            postgres_os_user=os_user,
            postgres_password=password,
            postgres_bin_dir=str(bin_dir),
            server_pid=process.pid,
            server_log=str(self.server_log),
            history_shards=self.history_shards,
        )
        self._write_state(state)
        asyncio.run(self._wait_ready(state, process, timeout_s))
        return state

    async def _wait_ready(
        self, state: TemporalSqlState, process: subprocess.Popen[bytes], timeout_s: float
    ) -> None:
        deadline = time.monotonic() + timeout_s
        problem = "no answer yet"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise TemporalSqlError(
                    f"temporal-server exited with code {process.returncode} during startup; log:\n"
                    + self.server_log.read_text(encoding="utf-8", errors="replace")[-3000:]
                )
            try:
                await _register_namespace(state.address, state.namespace)
                await _check_client(state.address, state.namespace, timeout_s=5.0)
                return
            except (TemporalSqlError, RPCError, RuntimeError) as exc:
                problem = str(exc)
            await asyncio.sleep(0.5)
        raise TemporalSqlError(
            f"temporal-server not ready at {state.address} after {timeout_s:.0f}s ({problem}); log:\n"
            + self.server_log.read_text(encoding="utf-8", errors="replace")[-3000:]
        )


async def _register_namespace(address: str, namespace: str) -> None:
    client = await Client.connect(address, namespace=namespace)
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace,
                workflow_execution_retention_period=_duration(timedelta(days=3)),
            )
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.ALREADY_EXISTS:
            raise


def _duration(value: timedelta) -> Duration:
    duration = Duration()
    duration.FromTimedelta(value)
    return duration


async def _check_client(address: str, namespace: str, timeout_s: float) -> None:
    """A real client: the frontend is healthy, the namespace is served and visibility answers."""
    try:
        client = await asyncio.wait_for(Client.connect(address, namespace=namespace), timeout_s)
        await asyncio.wait_for(client.service_client.check_health(), timeout_s)
        await asyncio.wait_for(
            client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace)),
            timeout_s,
        )
        await asyncio.wait_for(client.count_workflows(), timeout_s)
    except (RPCError, RuntimeError, TimeoutError, OSError) as exc:
        raise TemporalSqlError(f"temporal at {address} (namespace {namespace}): {exc}") from exc


def _create_database(port: int, password: str, name: str) -> None:
    """Create database `name` (owned by the server's user) unless it exists."""
    import psycopg

    url = f"postgresql://{DB_USER}:{password}@127.0.0.1:{port}/postgres"
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as db:
            if db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                db.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        raise TemporalSqlError(f"could not create database {name}: {exc}") from exc


def store_url(state: TemporalSqlState, database: str = STORE_DATABASE) -> str:
    """The URL of backout's shared store on this PostgreSQL (BACKOUT_DATABASE_URL)."""
    return f"postgresql://{DB_USER}:{state.postgres_password}@127.0.0.1:{state.postgres_port}/{database}"


def client_env(state: TemporalSqlState) -> dict[str, str]:
    """The settings a backout worker or API needs to use this server, and the shared store on its
    PostgreSQL (every replica must see the same reported changes and culprit labels)."""
    return {
        "BACKOUT_TEMPORAL_ADDRESS": state.address,
        "BACKOUT_TEMPORAL_NAMESPACE": state.namespace,
        "BACKOUT_DATABASE_URL": store_url(state),
    }


def state_json(state: TemporalSqlState) -> str:
    """The state without the database password (for printing)."""
    shown = state.model_dump()
    shown["postgres_password"] = "********"
    return json.dumps(shown, indent=2)
