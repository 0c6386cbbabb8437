"""Everything the demo and the closed-loop test run, on loopback, started in order and stopped in reverse.

Local control plane (KWOK nodes) -> PagerDuty/Slack receivers -> Temporal dev server ->
backout worker + API (this process) -> the simulated AI service (a local process reading
its versions from the cluster) -> Prometheus + Alertmanager with the shipped rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from pydantic import SecretStr
from temporalio.client import Client

from activities.kube.client import KubeApis, apis_from_kubeconfig
from api.app import create_app
from api.transport import server_config
from config import EvalTarget, EvidenceQuery, Settings
from devstack.cluster.local import LocalCluster
from devstack.demo import workloads
from devstack.demo.gitops import DemoFleet
from devstack.prometheus import AlertingStack, ScrapeTarget
from devstack.receivers.local import DEMO_ROUTING_KEY, LocalPaging, start_local_paging
from devstack.temporal_sql import TemporalSql
from worker.temporal_client import connect
from worker.temporal_server import DevServerConfig, TemporalDevServer, free_port
from worker.worker import run_worker

REPO = Path(__file__).resolve().parents[2]  # the repository: the demo runs from a checkout
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
OWNERS_FILE = REPO / "deploy" / "owners.yaml"
GOLDEN_MANIFEST = REPO / "evals" / "sets" / "orbitdesk" / "manifest.yaml"
# One credential per API role (README "Security"); loopback only, for the demo and its tests.
SENDER_TOKEN = "backout-demo-sender-token"
REPORTER_TOKEN = "backout-demo-reporter-token"
OPERATOR_TOKEN = "backout-demo-operator-token"
API_TOKEN = OPERATOR_TOKEN  # what the demo and its tests read incidents with
SERVICE = "rag-api"

# Per-version retrieval precision of the RAG service: new prompt/corpus versions next to old.
EVIDENCE = [
    EvidenceQuery(
        name="retrieval_precision",
        query='avg by (service, prompt_version) (simservice_retrieval_precision{namespace="{namespace}"})',
        version_label="prompt_version",
    ),
    EvidenceQuery(
        name="retrieval_precision",
        query='avg by (service) (simservice_retrieval_precision{namespace="{namespace}"})',
    ),
]


@dataclass
class StackOptions:
    state_dir: Path
    bad_prompts: list[str] = field(default_factory=list)
    bad_models: list[str] = field(default_factory=list)
    bad_corpora: list[str] = field(default_factory=list)
    settle_s: float = 10.0
    cooldown_s: float = 300.0
    rule_dirs: list[Path] = field(default_factory=lambda: [RULES_DIR])
    with_eval_manifest: bool = True
    # temporal-server on PostgreSQL (devstack.temporal_sql) instead of the dev server on SQLite.
    production_temporal: bool = False
    # The service deployed by Flux from a Git repository (devstack/demo/gitops.py), not directly.
    gitops: bool = False


@dataclass
class Stack:
    options: StackOptions
    settings: Settings
    cluster: LocalCluster
    apis: KubeApis
    paging: LocalPaging
    temporal: TemporalDevServer | None  # None on production Temporal
    temporal_address: str
    temporal_ui_url: str | None
    client: Client
    api_url: str
    simservice_url: str
    alerting: AlertingStack
    fleet: DemoFleet | None = None

    @property
    def prometheus_url(self) -> str:
        return self.alerting.prometheus.url


def _simservice(options: StackOptions, kubeconfig: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "devstack.simservice", "--port", str(port),
        "--kube-namespace", workloads.NAMESPACE, "--kube-deployment", workloads.LLM_DEPLOYMENT,
        "--prompt-configmap", workloads.PROMPT_CONFIGMAP, "--corpus-configmap", workloads.CORPUS_CONFIGMAP,
        "--kubeconfig", str(kubeconfig), "--bad-marker", "", "--latency-scale", "0.05", "--seed", "7",
    ]  # fmt: skip
    for version in options.bad_prompts:
        argv += ["--bad-prompt", version]
    for version in options.bad_models:
        argv += ["--bad-model", version]
    for version in options.bad_corpora:
        argv += ["--bad-corpus", version]
    handle = log.open("ab")
    return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)


def _wait_http(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s")


@contextlib.asynccontextmanager
async def running_stack(options: StackOptions) -> AsyncIterator[Stack]:
    state = options.state_dir
    if state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True)
    async with contextlib.AsyncExitStack() as stack:
        cluster = LocalCluster(state / "cluster")
        await asyncio.to_thread(cluster.start, 180.0)
        stack.callback(cluster.stop)
        apis = apis_from_kubeconfig(cluster.kubeconfig)
        stack.callback(apis.close)
        await asyncio.to_thread(workloads.recreate_namespace, apis)
        fleet: DemoFleet | None = None
        if options.gitops:
            fleet = DemoFleet(state / "gitops", cluster.kubeconfig, apis)
            stack.callback(fleet.stop)
            await asyncio.to_thread(fleet.start)
        else:
            await asyncio.to_thread(workloads.deploy, apis)
        await asyncio.to_thread(workloads.wait_available, apis)

        paging = start_local_paging(state / "paging")
        stack.callback(paging.stop)
        # The ownership file names the routing key through an environment variable.
        os.environ["BACKOUT_PD_KEY_ML_PLATFORM"] = DEMO_ROUTING_KEY

        temporal: TemporalDevServer | None = None
        if options.production_temporal:
            production = TemporalSql(state / "temporal-sql")
            temporal_address = (await asyncio.to_thread(production.start)).address
            stack.callback(production.stop, True)
            temporal_ui_url: str | None = None
        else:
            temporal = TemporalDevServer(
                DevServerConfig(
                    db_file=state / "temporal.sqlite",
                    port=free_port(),
                    ui_port=free_port(),
                    log_file=state / "temporal.log",
                )
            )
            temporal.start()
            stack.callback(temporal.stop)
            temporal_address, temporal_ui_url = temporal.address, temporal.ui_url

        api_port = free_port()
        sim_port = free_port()
        alerting = AlertingStack(
            state / "alerting",
            webhook_url=f"http://127.0.0.1:{api_port}/v1/alerts/alertmanager",
            bearer_token=SENDER_TOKEN,
            rule_dirs=options.rule_dirs,
            scrape_targets=[
                ScrapeTarget(
                    job=SERVICE,
                    addresses=[f"127.0.0.1:{sim_port}"],
                    labels={"service": SERVICE, "namespace": workloads.NAMESPACE},
                )
            ],
        )
        settings = Settings(
            state_dir=state / "backout",
            temporal_address=temporal_address,
            api_port=api_port,
            sender_token=SecretStr(SENDER_TOKEN),
            reporter_token=SecretStr(REPORTER_TOKEN),
            operator_token=SecretStr(OPERATOR_TOKEN),
            public_url=f"http://127.0.0.1:{api_port}",
            kubeconfig=cluster.kubeconfig,
            allowed_namespaces=[workloads.NAMESPACE],
            prometheus_url=alerting.prometheus.url,
            evidence_queries=EVIDENCE,
            eval_manifests={
                f"{workloads.NAMESPACE}/{SERVICE}": EvalTarget(
                    manifest=GOLDEN_MANIFEST, endpoint=f"http://127.0.0.1:{sim_port}"
                )
            }
            if options.with_eval_manifest
            else {},
            ownership_file=OWNERS_FILE,
            incident_settle_s=options.settle_s,
            incident_cooldown_s=options.cooldown_s,
            **paging.settings_overrides(),
            **(fleet.settings_overrides() if fleet is not None else {}),
        )
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        client = await connect(settings, attempts=40)

        stop = asyncio.Event()
        worker_task = asyncio.create_task(run_worker(client, settings, stop))
        app = create_app(settings, lambda: connect(settings), temporal_ui_url=temporal_ui_url)
        server = uvicorn.Server(server_config(app, settings, host="127.0.0.1", port=api_port))
        api_task = asyncio.create_task(server.serve())

        async def stop_backout() -> None:
            stop.set()
            server.should_exit = True
            await asyncio.gather(worker_task, api_task, return_exceptions=True)

        stack.push_async_callback(stop_backout)
        await asyncio.to_thread(_wait_http, f"http://127.0.0.1:{api_port}/healthz")

        sim = _simservice(options, cluster.kubeconfig, sim_port, state / "simservice.log")

        def stop_sim() -> None:
            sim.terminate()
            try:
                sim.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sim.kill()

        stack.callback(stop_sim)
        await asyncio.to_thread(_wait_http, f"http://127.0.0.1:{sim_port}/healthz", 60.0)

        await asyncio.to_thread(alerting.start)
        stack.callback(alerting.stop)

        yield Stack(
            options=options,
            settings=settings,
            cluster=cluster,
            apis=apis,
            paging=paging,
            temporal=temporal,
            temporal_address=temporal_address,
            temporal_ui_url=temporal_ui_url,
            client=client,
            api_url=f"http://127.0.0.1:{api_port}",
            simservice_url=f"http://127.0.0.1:{sim_port}",
            alerting=alerting,
            fleet=fleet,
        )
