"""A loopback Kubernetes control plane: etcd, apiserver (TLS + RBAC), controllers, scheduler, KWOK nodes.

Processes run detached in their own sessions so `backout cluster up` can return; their
pids and ports live in `<state_dir>/cluster.json` for `status` and `down`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from devstack.cluster import build, pki
from devstack.cluster.kubeconfig import write_kubeconfig
from devstack.cluster.nodes import fake_node, node_ready
from devstack.cluster.processes import etcd_supports_no_fsync, free_port, pid_alive, reap
from devstack.cluster.state import ClusterState, ClusterStatus, ComponentStatus, ProcessInfo
from devstack.defaults import CLUSTER_STATE_DIR

DEFAULT_STATE_DIR = CLUSTER_STATE_DIR
FAKE_NODE_COUNT = 3
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
# etcd 3.4 lacks progress notifications, so the apiserver refuses watch-list streams;
# client-go would retry them every half minute before falling back to list + watch.
CLIENT_FEATURE_ENV = {"KUBE_FEATURE_WatchListClient": "false"}
PORT_RACE_ATTEMPTS = 3
NODE_LEASE_DURATION_S = 40
STOP_ORDER = ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")


class ClusterError(RuntimeError):
    """The cluster could not be started, reached or stopped; the message says why."""


class LocalCluster:
    """Start, inspect and stop one local control plane rooted at `state_dir`."""

    def __init__(self, state_dir: Path | str = DEFAULT_STATE_DIR, version: str = build.KUBERNETES_VERSION):
        self.state_dir = Path(state_dir).absolute()
        self.version = version
        self.pki_dir = self.state_dir / "pki"
        self.log_dir = self.state_dir / "logs"
        self.state_file = self.state_dir / "cluster.json"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    def read_state(self) -> ClusterState | None:
        if not self.state_file.exists():
            return None
        return ClusterState.model_validate_json(self.state_file.read_text(encoding="utf-8"))

    # --- lifecycle ---------------------------------------------------------------------

    def start(self, timeout_s: float = 120.0, fresh: bool = False) -> ClusterState:
        """Start every component and wait until nodes are Ready; reuses a cluster already up.

        The etcd data directory survives `stop()`, so objects (and backout's in-cluster
        history) are still there on the next start; `fresh=True` wipes it first.
        """
        current = self.status()
        if current.up and current.ready:
            state = self.read_state()
            assert state is not None
            return state
        if current.up:
            self.stop()
        if not build.is_built(self.version):
            build.build(self.version)
        built_etcd = build.binary_path("etcd", self.version)
        etcd_binary = str(built_etcd) if built_etcd.exists() else shutil.which("etcd")
        if etcd_binary is None:
            raise ClusterError("no etcd: run `backout cluster build` (or install Debian etcd-server)")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        pki.ensure_ca(self.pki_dir)
        serving = pki.issue_cert(
            self.pki_dir,
            "apiserver",
            "kube-apiserver",
            server_hosts=["127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "10.96.0.1"],
        )
        admin = pki.issue_cert(self.pki_dir, "admin", "backout-admin", organizations=["system:masters"])

        for attempt in range(PORT_RACE_ATTEMPTS):
            try:
                return self._launch(etcd_binary, serving, admin, timeout_s, fresh)
            except ClusterError as exc:
                # A free port can be taken by someone else between our probe and the child's bind.
                if "address already in use" not in str(exc) or attempt == PORT_RACE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _launch(
        self,
        etcd_binary: str,
        serving: tuple[Path, Path],
        admin: tuple[Path, Path],
        timeout_s: float,
        fresh: bool,
    ) -> ClusterState:
        api_port, etcd_port, peer_port = free_port(), free_port(), free_port()
        apiserver_url = f"https://127.0.0.1:{api_port}"
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        write_kubeconfig(self.kubeconfig, apiserver_url, self.pki_dir / "ca.crt", admin[0], admin[1])
        state = ClusterState(
            version=self.version,
            started_at=datetime.now(UTC),
            apiserver_url=apiserver_url,
            etcd_url=etcd_url,
            kubeconfig=str(self.kubeconfig),
        )
        try:
            etcd_data = self.state_dir / "etcd"
            if fresh:
                shutil.rmtree(etcd_data, ignore_errors=True)
            peer_url = f"http://127.0.0.1:{peer_port}"
            self._spawn(
                state,
                "etcd",
                [
                    etcd_binary,
                    "--name=backout",
                    f"--data-dir={etcd_data}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=backout={peer_url}",
                    "--unsafe-no-fsync=true" if etcd_supports_no_fsync(etcd_binary) else "--log-level=warn",
                ],
            )
            self._spawn(state, "kube-apiserver", self._apiserver_args(api_port, etcd_url, serving))
            self._wait_readyz(apiserver_url, timeout_s)
            common = [
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--authentication-skip-lookup=true",
            ]
            self._spawn(
                state,
                "kube-controller-manager",
                [
                    str(build.binary_path("kube-controller-manager", self.version)),
                    *common,
                    f"--secure-port={free_port()}",
                    f"--service-account-private-key-file={self.pki_dir / pki.SERVICE_ACCOUNT_KEY}",
                    f"--root-ca-file={self.pki_dir / 'ca.crt'}",
                    "--use-service-account-credentials=false",
                    f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                    # Generous next to the 10 s lease renewals: a frozen or starved KWOK (fault tests,
                    # a busy CI machine) must not flap the fake nodes and their pods NotReady.
                    "--node-monitor-grace-period=300s",
                ],
            )
            self._spawn(
                state,
                "kube-scheduler",
                [
                    str(build.binary_path("kube-scheduler", self.version)),
                    *common,
                    f"--secure-port={free_port()}",
                ],
            )
            self._spawn(
                state,
                "kwok",
                [
                    str(build.binary_path("kwok", self.version)),
                    f"--kubeconfig={self.kubeconfig}",
                    "--manage-all-nodes=true",
                    # Heartbeat through node Leases (renewed every 10 s). Without them KWOK falls back to
                    # a node-status heartbeat every 10-20 minutes: the node lifecycle controller then marks
                    # the nodes NotReady every grace period, and the pods it marks NotReady stay so.
                    f"--node-lease-duration-seconds={NODE_LEASE_DURATION_S}",
                    f"--server-address=127.0.0.1:{free_port()}",
                ],
            )
            self._create_nodes_and_wait(timeout_s)
        except BaseException:
            self.stop()
            raise
        return state

    def stop(self, timeout_s: float = 15.0) -> list[str]:
        """Stop every recorded process (SIGTERM, then SIGKILL); returns the names stopped."""
        state = self.read_state()
        if state is None:
            return []
        by_name = {process.name: process for process in state.processes}
        stopped: list[str] = []
        for name in STOP_ORDER:
            process = by_name.get(name)
            if process is None or not pid_alive(process.pid, name):
                continue
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + timeout_s
            while pid_alive(process.pid, name) and time.monotonic() < deadline:
                reap(process.pid)
                time.sleep(0.1)
            if pid_alive(process.pid, name):
                os.killpg(process.pid, signal.SIGKILL)
            reap(process.pid)
            stopped.append(name)
        self.state_file.unlink(missing_ok=True)
        return stopped

    def stop_component(self, name: str, timeout_s: float = 15.0) -> None:
        """Stop one component (fault injection: e.g. the apiserver going away)."""
        state = self.read_state()
        process = next((p for p in state.processes if p.name == name), None) if state else None
        if process is None:
            raise ClusterError(f"no component {name} in this cluster")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while pid_alive(process.pid, name) and time.monotonic() < deadline:
            reap(process.pid)
            time.sleep(0.1)
        if pid_alive(process.pid, name):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        reap(process.pid)

    def start_component(self, name: str, timeout_s: float = 60.0) -> None:
        """Start a stopped component again with the arguments it first ran with."""
        state = self.read_state()
        process = next((p for p in state.processes if p.name == name), None) if state else None
        if state is None or process is None or not process.args:
            raise ClusterError(f"no recorded arguments to restart {name}")
        self._spawn(state, name, process.args)
        if name == "kube-apiserver":
            self._wait_readyz(state.apiserver_url, timeout_s)

    def status(self) -> ClusterStatus:
        state = self.read_state()
        if state is None:
            return ClusterStatus(state_dir=str(self.state_dir), up=False)
        components = [
            ComponentStatus(name=p.name, pid=p.pid, running=pid_alive(p.pid, p.name)) for p in state.processes
        ]
        running = all(component.running for component in components) and len(components) == len(STOP_ORDER)
        result = ClusterStatus(
            state_dir=str(self.state_dir),
            up=any(component.running for component in components),
            apiserver_url=state.apiserver_url,
            kubeconfig=state.kubeconfig,
            version=state.version,
            components=components,
        )
        if running:
            try:
                with self._admin_client() as client:
                    nodes = client.get("/api/v1/nodes").json().get("items", [])
                result.nodes_ready = sum(1 for node in nodes if node_ready(node))
                result.ready = result.nodes_ready > 0
            except httpx.HTTPError:
                result.ready = False
        return result

    # --- helpers -------------------------------------------------------------------------

    def _apiserver_args(self, port: int, etcd_url: str, serving: tuple[Path, Path]) -> list[str]:
        sa_key = self.pki_dir / pki.SERVICE_ACCOUNT_KEY
        return [
            str(build.binary_path("kube-apiserver", self.version)),
            f"--etcd-servers={etcd_url}",
            f"--secure-port={port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--tls-cert-file={serving[0]}",
            f"--tls-private-key-file={serving[1]}",
            f"--client-ca-file={self.pki_dir / 'ca.crt'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={self.pki_dir / pki.SERVICE_ACCOUNT_PUB}",
            f"--service-account-signing-key-file={sa_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--allow-privileged=false",
        ]

    def _spawn(self, state: ClusterState, name: str, args: list[str]) -> None:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **CLIENT_FEATURE_ENV},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.state_dir,
            )
        state.processes = [p for p in state.processes if p.name != name]
        state.processes.append(ProcessInfo(name=name, pid=process.pid, log=str(log_path), args=args))
        self.state_file.write_text(state.model_dump_json(indent=2), encoding="utf-8")

    def _admin_client(self, timeout_s: float = 5.0) -> httpx.Client:
        state = self.read_state()
        if state is None:
            raise ClusterError(f"no cluster recorded in {self.state_dir}")
        context = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        context.load_cert_chain(str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
        return httpx.Client(base_url=state.apiserver_url, verify=context, timeout=timeout_s)

    def _check_alive(self) -> None:
        state = self.read_state()
        assert state is not None
        for process in state.processes:
            if not pid_alive(process.pid, process.name):
                how = reap(process.pid)
                tail = Path(process.log).read_text(errors="replace").splitlines()[-15:]
                raise ClusterError(
                    f"{process.name} exited during startup ({how}); log tail:\n" + "\n".join(tail)
                )

    def _wait_readyz(self, url: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        with self._admin_client(timeout_s=2.0) as client:
            while time.monotonic() < deadline:
                self._check_alive()
                try:
                    response = client.get("/readyz")
                    if response.status_code == 200:
                        return
                    last = response.text[-300:]
                except httpx.HTTPError as exc:
                    last = str(exc)
                time.sleep(0.3)
        raise ClusterError(f"kube-apiserver at {url} not ready after {timeout_s:.0f}s: {last}")

    def _create_nodes_and_wait(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self._admin_client() as client:
            for index in range(FAKE_NODE_COUNT):
                response = client.post("/api/v1/nodes", json=fake_node(f"kwok-node-{index}"))
                if response.status_code not in (201, 409):
                    raise ClusterError(f"creating fake node failed: {response.status_code} {response.text}")
            while time.monotonic() < deadline:
                self._check_alive()
                nodes = client.get("/api/v1/nodes").json().get("items", [])
                default_sa = client.get("/api/v1/namespaces/default/serviceaccounts/default")
                if (
                    sum(1 for node in nodes if node_ready(node)) == FAKE_NODE_COUNT
                    and default_sa.status_code == 200
                ):
                    return
                time.sleep(0.3)
        raise ClusterError(f"fake nodes or the default ServiceAccount not ready after {timeout_s:.0f}s")
