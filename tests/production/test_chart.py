"""The Helm chart (deploy/helm/backout) with helm built from its Go module, on the local control plane:
lint clean, server-side dry runs of the default and the everything-on values, a real install whose
Deployments reach their replicas on the KWOK nodes, and RBAC that is exactly what the worker calls."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import V1Namespace, V1ObjectMeta

from activities.kube.client import KubeApis
from config import Settings, load_settings
from devstack.cluster.local import LocalCluster
from devstack.tools import TEMPORAL
from tests.production.conftest import CHART, CRDS, REPO, VALUES_DIR, run

pytestmark = [pytest.mark.kube, pytest.mark.slow, pytest.mark.timeout(900)]

VALUES = VALUES_DIR
RELEASE = "backout"


@pytest.fixture
def helm_env(tmp_path: Path) -> Iterator[None]:
    """helm keeps its config, cache and data in the test's own folders."""
    saved = {key: os.environ.get(key) for key in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")}
    for key in saved:
        os.environ[key] = str(tmp_path / key.lower())
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _namespace(apis: KubeApis, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    apis.core.create_namespace(V1Namespace(metadata=V1ObjectMeta(name=name)))
    return name


def template(helm: Path, namespace: str, *args: str | Path) -> list[dict[str, Any]]:
    output = run([helm, "template", RELEASE, CHART, "--namespace", namespace, *args]).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def _write(documents: list[dict[str, Any]], path: Path) -> Path:
    path.write_text(yaml.safe_dump_all(documents), encoding="utf-8")
    return path


def test_helm_lint_is_clean(helm_binary: Path, helm_env: None) -> None:
    for extra in (
        [],
        ["--values", str(VALUES / "all-on.yaml"), "--set-json", 'allowedNamespaces=["ml-serving"]'],
    ):
        result = run([helm_binary, "lint", "--strict", CHART, *extra])
        assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout
        assert not re.search(r"\[(WARNING|ERROR)\]", result.stdout + result.stderr), result.stdout


@pytest.mark.parametrize(
    ("values", "refusal"),
    [
        ([], "temporal.address is required"),
        (["--values", str(VALUES / "required.yaml")], "allowedNamespaces is required"),
        (["--values", str(VALUES / "required.yaml"), "--set-json", 'allowedNamespaces=["Not_A_Namespace"]'],
         "allowedNamespaces"),
        (["--values", str(VALUES / "required.yaml"), "--set-json", 'allowedNamespaces=["*","prod"]'],
         '"*" must be the only entry'),
        (["--set", "temporal.address=t:7233", "--set-json", 'allowedNamespaces=["prod"]'],
         "secrets.senderToken.existingSecret is required"),
    ],
)  # fmt: skip
def test_missing_or_bad_values_fail_with_the_value_named(
    helm_binary: Path, helm_env: None, values: list[str], refusal: str
) -> None:
    result = run([helm_binary, "template", RELEASE, CHART, *values], check=False)
    assert result.returncode != 0 and refusal in result.stderr, result.stderr


def test_default_values_pass_a_server_side_dry_run(
    helm_binary: Path, helm_env: None, kubectl_binary: Path, kube_cluster: LocalCluster, kube_apis: KubeApis,
    tmp_path: Path,
) -> None:  # fmt: skip
    release_ns, allowed = _namespace(kube_apis, "bo-rel"), _namespace(kube_apis, "bo-app")
    documents = template(
        helm_binary,
        release_ns,
        "--values",
        VALUES / "required.yaml",
        "--set-json",
        f'allowedNamespaces=["{allowed}"]',
    )
    kinds = sorted(doc["kind"] for doc in documents)
    assert kinds == sorted(
        ["ConfigMap", "ServiceAccount", "ServiceAccount", "Role", "RoleBinding", "Service", "Service",
         "Deployment", "Deployment", "PodDisruptionBudget", "NetworkPolicy", "NetworkPolicy"]
    )  # fmt: skip
    kubectl = _kubectl(kubectl_binary, kube_cluster, tmp_path / "kube-cache")
    applied = run([*kubectl, "apply", "--dry-run=server", "-f", _write(documents, tmp_path / "default.yaml")])
    assert applied.stdout.count("(server dry run)") == len(documents), applied.stdout


def _install_crds(kubectl: list[str | Path]) -> None:
    """The Prometheus Operator CRDs, installed and served. `Established` is not enough: the
    apiserver publishes a new group in its discovery document asynchronously, and under load a
    client that maps kinds through discovery (kubectl apply) still finds no ServiceMonitor for a
    while after it ("no matches for kind"). So wait until discovery lists both resources."""
    for crd in sorted(CRDS.glob("monitoring.coreos.com_*.yaml")):
        run([*kubectl, "apply", "--server-side", "-f", crd])
    for name in ("servicemonitors", "prometheusrules"):
        run(
            [
                *kubectl,
                "wait",
                "--for=condition=Established",
                f"crd/{name}.monitoring.coreos.com",
                "--timeout=120s",
            ]
        )
    deadline = time.monotonic() + 120
    while True:
        served = run(
            [*kubectl, "api-resources", "--api-group=monitoring.coreos.com", "-o", "name"], check=False
        )
        names = set(served.stdout.split())
        if {"servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com"} <= names:
            return
        assert time.monotonic() < deadline, (
            f"CRDs established but not in discovery: {served.stdout}{served.stderr}"
        )
        time.sleep(0.5)


def _kubectl(binary: Path, cluster: LocalCluster, cache: Path) -> list[str | Path]:
    """kubectl with a discovery cache of the test's own: the default one under ~/.kube/cache is
    shared by every kubectl on the machine, which rewrite its files while others read them."""
    return [binary, "--kubeconfig", cluster.kubeconfig, "--cache-dir", cache]


def test_every_optional_part_passes_a_server_side_dry_run(
    helm_binary: Path, helm_env: None, kubectl_binary: Path, kube_cluster: LocalCluster, kube_apis: KubeApis,
    tmp_path: Path,
) -> None:  # fmt: skip
    kubectl = _kubectl(kubectl_binary, kube_cluster, tmp_path / "kube-cache")
    _install_crds(kubectl)
    release_ns = _namespace(kube_apis, "bo-rel")
    allowed = [_namespace(kube_apis, "bo-app"), _namespace(kube_apis, "bo-app")]
    documents = template(
        helm_binary,
        release_ns,
        "--values",
        VALUES / "all-on.yaml",
        "--set-json",
        f"allowedNamespaces={json.dumps(allowed)}",
    )
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in documents:
        by_kind.setdefault(doc["kind"], []).append(doc)
    for kind in ("Ingress", "ServiceMonitor", "PrometheusRule", "NetworkPolicy", "PodDisruptionBudget"):
        assert kind in by_kind, f"{kind} missing from {sorted(by_kind)}"
    assert sorted(cm["metadata"]["name"] for cm in by_kind["ConfigMap"]) == [
        f"{RELEASE}-owners",
        f"{RELEASE}-runbooks",
        f"{RELEASE}-settings",
    ]
    # Cluster-wide read (optional): reads through the ClusterRole, writes only through each
    # allowed namespace's Role.
    assert [role["metadata"]["name"] for role in by_kind["ClusterRole"]] == [f"{RELEASE}-{release_ns}-read"]
    assert sorted(role["metadata"]["namespace"] for role in by_kind["Role"]) == sorted(allowed)
    shipped = [
        group["name"]
        for rules in sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yaml"))
        for group in yaml.safe_load(rules.read_text(encoding="utf-8"))["groups"]
    ]
    assert sorted(g["name"] for g in by_kind["PrometheusRule"][0]["spec"]["groups"]) == sorted(shipped)
    applied = run([*kubectl, "apply", "--dry-run=server", "-f", _write(documents, tmp_path / "all-on.yaml")])
    assert applied.stdout.count("(server dry run)") == len(documents), applied.stdout


def _ready(apis: KubeApis, namespace: str, name: str) -> tuple[int, int]:
    deployment = apis.apps.read_namespaced_deployment(name, namespace)
    return deployment.spec.replicas, deployment.status.ready_replicas or 0


def test_helm_install_brings_the_deployments_to_their_replicas_on_the_fake_nodes(
    helm_binary: Path, helm_env: None, kube_cluster: LocalCluster, kube_apis: KubeApis
) -> None:
    release_ns, allowed = _namespace(kube_apis, "bo-rel"), _namespace(kube_apis, "bo-app")
    kubeconfig = str(kube_cluster.kubeconfig)
    run(
        [helm_binary, "install", RELEASE, CHART, "--kubeconfig", kubeconfig, "--namespace", release_ns,
         "--values", VALUES / "required.yaml", "--set-json", f'allowedNamespaces=["{allowed}"]',
         "--set", "worker.replicas=3", "--wait", "--timeout", "180s"]
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        wanted = {f"{RELEASE}-api": 2, f"{RELEASE}-worker": 3}
        while True:
            states = {name: _ready(kube_apis, release_ns, name) for name in wanted}
            if all(states[name] == (count, count) for name, count in wanted.items()):
                break
            assert time.monotonic() < deadline, f"deployments not at their replicas: {states}"
            time.sleep(1)
        pods = kube_apis.core.list_namespaced_pod(release_ns).items
        assert len(pods) == 5
        assert all((pod.spec.node_name or "").startswith("kwok-node-") for pod in pods)
        worker_pods = [p for p in pods if p.metadata.labels["app.kubernetes.io/component"] == "worker"]
        assert {p.spec.service_account_name for p in worker_pods} == {f"{RELEASE}-worker"}
        status = run(
            [helm_binary, "status", RELEASE, "--kubeconfig", kubeconfig, "-n", release_ns, "-o", "json"]
        )
        assert json.loads(status.stdout)["info"]["status"] == "deployed"
    finally:
        run([helm_binary, "uninstall", RELEASE, "--kubeconfig", kubeconfig, "-n", release_ns, "--wait"])


# What each Kubernetes client method needs: its verb by prefix, its resource by the rest of its name.
VERBS = {
    "read": "get",
    "list": "list",
    "create": "create",
    "replace": "update",
    "patch": "patch",
    "delete": "delete",
}
RESOURCES = {
    "config_map": ("", "configmaps"),
    "secret": ("", "secrets"),
    "deployment": ("apps", "deployments"),
    "replica_set": ("apps", "replicasets"),
    "pod": ("", "pods"),
    "namespace": ("", "namespaces"),
}
WORKER_SOURCES = [*sorted((REPO / "activities" / "kube").rglob("*.py")), REPO / "activities" / "context.py"]


def calls_the_worker_makes() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every apis.core/apis.apps call in the worker's Kubernetes code."""
    needed: set[tuple[str, str, str]] = set()
    call = re.compile(
        r"\.(?:core|apps)\.(read|list|create|replace|patch|delete)_(?:namespaced_)?(\w+?)(?:_for_all_namespaces)?\b"
    )
    for source in WORKER_SOURCES:
        text = source.read_text(encoding="utf-8")
        for verb, resource in call.findall(text):
            group, plural = RESOURCES[resource]
            needed.add((group, plural, VERBS[verb]))
            # The history recorder streams its list calls (watch.Watch().stream(list_...)).
            if "watch.Watch()" in text and verb == "list" and plural in ("configmaps", "secrets"):
                needed.add((group, plural, "watch"))
    # Listing every namespace happens only without an allow list, which the chart requires.
    needed.discard(("", "namespaces", "list"))
    return needed


def granted(documents: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    rules = [rule for doc in documents if doc["kind"] in ("Role", "ClusterRole") for rule in doc["rules"]]
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("cluster_wide_read", [True, False])
def test_the_charts_rbac_is_exactly_what_the_worker_calls(
    helm_binary: Path, helm_env: None, cluster_wide_read: bool
) -> None:
    documents = template(
        helm_binary, "backout", "--values", VALUES / "required.yaml", "--set-json", 'allowedNamespaces=["prod"]',
        "--set", f"rbac.clusterWideRead={str(cluster_wide_read).lower()}",
    )  # fmt: skip
    needed = calls_the_worker_makes()
    assert ("apps", "deployments", "patch") in needed and ("", "secrets", "watch") in needed
    assert granted(documents) == needed
    cluster_wide = granted([doc for doc in documents if doc["kind"] == "ClusterRole"])
    assert not any(resource == "secrets" for _, resource, _ in cluster_wide), "Secrets must stay namespaced"
    assert not any(verb not in ("get", "list", "watch") for _, _, verb in cluster_wide), "writes only by Role"


def test_the_charts_rules_are_the_shipped_rules() -> None:
    shipped = REPO / "deploy" / "prometheus" / "rules"
    copied = CHART / "files" / "prometheus-rules"
    names = sorted(path.name for path in shipped.glob("*.yaml"))
    assert names == sorted(path.name for path in copied.glob("*.yaml"))
    for name in names:
        assert (copied / name).read_bytes() == (shipped / name).read_bytes(), (
            f"{name} differs: cp deploy/prometheus/rules/*.yaml deploy/helm/backout/files/prometheus-rules/"
        )


@pytest.mark.parametrize("values", ["required.yaml", "all-on.yaml"])
def test_the_rendered_settings_file_loads_as_backout_settings(
    helm_binary: Path, helm_env: None, values: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents = template(
        helm_binary, "backout", "--values", VALUES / values, "--set-json", 'allowedNamespaces=["prod","rag"]'
    )
    settings_map = next(
        d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-settings")
    )
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(settings_map["data"]["settings.yaml"], encoding="utf-8")
    for key in [k for k in os.environ if k.startswith("BACKOUT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("BACKOUT_CONFIG", str(settings_file))  # restored after the test
    loaded = load_settings()
    assert loaded.allowed_namespaces == ["prod", "rag"]
    assert loaded.temporal_address == "temporal-frontend.temporal.svc:7233"
    assert (loaded.api_host, loaded.worker_metrics_host, loaded.worker_metrics_port) == (
        "0.0.0.0",
        "0.0.0.0",
        9464,
    )
    # Each API replica takes its share of the per-incident budgets (README "Run it in your cluster").
    assert loaded.api_replicas == (3 if values == "all-on.yaml" else 2)
    if values == "all-on.yaml":
        assert loaded.runbook_dir == Path("/etc/backout/runbooks")
        assert loaded.ownership_file == Path("/etc/backout/owners/owners.yaml")
        assert loaded.max_rollbacks_per_namespace_per_hour == 2
        # Every env var the Deployments set from a Secret is a settings field too.
        env_names = {
            env["name"]
            for doc in documents
            if doc["kind"] == "Deployment"
            for env in doc["spec"]["template"]["spec"]["containers"][0]["env"]
            if env["name"].startswith("BACKOUT_") and env["name"] != "BACKOUT_PD_KEY_ML_PLATFORM"
        }
        fields = {f"BACKOUT_{name.upper()}" for name in Settings.model_fields} | {"BACKOUT_CONFIG"}
        assert env_names <= fields, env_names - fields
        assert {
            "BACKOUT_SENDER_TOKEN",
            "BACKOUT_REPORTER_TOKEN",
            "BACKOUT_OPERATOR_TOKEN",
            "BACKOUT_METRICS_TOKEN",
            "BACKOUT_PAGERDUTY_ROUTING_KEY",
            "BACKOUT_LLM_API_KEY",
        } <= env_names


def test_the_compose_file_and_the_chart_name_the_tested_server_version() -> None:
    tested = TEMPORAL.version.removeprefix("v")
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    images = {name: service.get("image", "") for name, service in compose["services"].items()}
    assert images["temporal"] == f"temporalio/server:{tested}", images
    assert images["temporal-schema"].startswith(f"temporalio/admin-tools:{tested}"), images
    chart = yaml.safe_load((REPO / "deploy" / "helm" / "backout" / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["annotations"]["backout.dev/tested-temporal-server"] == tested
    readme = (REPO / "deploy" / "helm" / "backout" / "README.md").read_text(encoding="utf-8")
    assert f"Temporal server {tested}" in readme
