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
from kubernetes.client import (
    AuthorizationV1Api,
    V1Namespace,
    V1ObjectMeta,
    V1ResourceAttributes,
    V1SubjectAccessReview,
    V1SubjectAccessReviewSpec,
)

from activities.kube.client import KubeApis
from config import Settings, load_settings
from config.gitops import SecretKeyRef
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
        (["--values", str(VALUES / "required.yaml"), "--set-json", 'allowedNamespaces=["prod"]',
          "--set", "secrets.databaseUrl.existingSecret="],
         "secrets.databaseUrl.existingSecret is required: the API pods and the workers share no disk"),
        (["--values", str(VALUES / "required.yaml"), "--set-json", 'allowedNamespaces=["prod"]',
          "--set", "config.database_url=postgresql://u:p@db:5432/backout"],
         "config.database_url: a credential never goes in the settings ConfigMap"),
        (["--values", str(VALUES / "required.yaml"), "--set-json", 'allowedNamespaces=["prod"]',
          "--set", "config.gitops.enabled=true"],
         "config.gitops: set the GitOps settings through the chart's gitops values"),
        (["--values", str(VALUES / "required.yaml"), "--set-json", 'allowedNamespaces=["prod"]',
          "--set", "gitops.enabled=true", "--set-json",
          'gitops.repositories=[{"url":"https://g/x.git","provider":{"type":"github","existingSecret":"s","key":"k"}}]'],
         "provider.repository (owner/name) is required"),
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
    flux = _namespace(kube_apis, "bo-flux")
    documents = template(
        helm_binary,
        release_ns,
        "--values",
        VALUES / "all-on.yaml",
        "--set-json",
        f"allowedNamespaces={json.dumps(allowed)}",
        "--set-json",
        # an allowed namespace among them: its own Role already grants the reconciler verbs
        f"gitops.reconcilerNamespaces={json.dumps([flux, allowed[0]])}",
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
    roles = {(role["metadata"]["namespace"], role["metadata"]["name"]) for role in by_kind["Role"]}
    assert roles == {
        *((namespace, f"{RELEASE}-{release_ns}") for namespace in allowed),
        (flux, f"{RELEASE}-{release_ns}-gitops"),
        (release_ns, f"{RELEASE}-git-credentials"),
    }, roles
    assert len(by_kind["RoleBinding"]) == len(roles)
    # HTTPS with client certificates: the Secret mounted, its files named, probes on the port only
    # (the kubelet has no client certificate), Prometheus scraping over https.
    api = next(d for d in by_kind["Deployment"] if d["metadata"]["name"] == f"{RELEASE}-api")
    pod = api["spec"]["template"]["spec"]
    container = pod["containers"][0]
    tls_env = {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("BACKOUT_API_TLS_")}
    assert tls_env == {
        "BACKOUT_API_TLS_CERT_FILE": "/etc/backout/api-tls/tls.crt",
        "BACKOUT_API_TLS_KEY_FILE": "/etc/backout/api-tls/tls.key",
        "BACKOUT_API_TLS_CLIENT_CA_FILE": "/etc/backout/api-tls/ca.crt",
    }
    assert {"name": "api-tls", "secret": {"secretName": "backout-api-tls"}} in pod["volumes"]
    assert {"name": "api-tls", "mountPath": "/etc/backout/api-tls", "readOnly": True} in container[
        "volumeMounts"
    ]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["tcpSocket"] == {"port": "http"} and "httpGet" not in container[probe]
    scraped = by_kind["ServiceMonitor"][0]["spec"]["endpoints"][0]
    assert scraped["scheme"] == "https" and scraped["tlsConfig"]["ca"]["secret"]["name"] == "backout-api-tls"
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


# One Git repository with its token in Secret fleet-git (the GitOps tests' values).
FLEET = '[{"url":"https://g.example/fleet.git","credentials":{"existingSecret":"fleet-git","key":"token"}}]'


def gitops_values(reconciler_namespace: str, enabled: bool = True) -> list[str]:
    return [
        "--set", f"gitops.enabled={str(enabled).lower()}",
        "--set-json", f'gitops.reconcilerNamespaces=["{reconciler_namespace}"]',
        "--set-json", f"gitops.repositories={FLEET}",
    ]  # fmt: skip


GITOPS_SOURCES = sorted((REPO / "activities" / "gitops").rglob("*.py"))


def calls_the_gitops_handshake_makes() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of the reconciler objects activities/gitops reads and patches."""
    text = "\n".join(source.read_text(encoding="utf-8") for source in GITOPS_SOURCES)
    kinds = re.findall(r'CustomResource\("([\w.]+)", "\w+", "(\w+)"\)', text)
    verbs = {
        "update" if verb == "replace" else verb
        for verb in re.findall(r"\.(get|list|patch|create|delete|replace)_namespaced_custom_object\(", text)
    }
    assert kinds and verbs == {"get", "patch"}, (kinds, verbs)
    return {(group, plural, verb) for group, plural in kinds for verb in verbs}


@pytest.mark.parametrize(
    ("cluster_wide_read", "gitops"), [(True, False), (False, False), (False, True), (True, True)]
)
def test_the_charts_rbac_is_exactly_what_the_worker_calls(
    helm_binary: Path, helm_env: None, cluster_wide_read: bool, gitops: bool
) -> None:
    documents = template(
        helm_binary, "backout", "--values", VALUES / "required.yaml", "--set-json", 'allowedNamespaces=["prod"]',
        "--set", f"rbac.clusterWideRead={str(cluster_wide_read).lower()}", *gitops_values("flux-system", gitops),
    )  # fmt: skip
    needed = calls_the_worker_makes()
    assert ("apps", "deployments", "patch") in needed and ("", "secrets", "watch") in needed
    reconcilers = calls_the_gitops_handshake_makes()
    assert ("kustomize.toolkit.fluxcd.io", "kustomizations", "patch") in reconcilers
    assert granted(documents) == (needed | reconcilers if gitops else needed)
    namespaces = {doc["metadata"]["namespace"] for doc in documents if doc["kind"] == "Role"}
    assert namespaces == ({"prod", "flux-system", "backout"} if gitops else {"prod"}), namespaces
    if gitops:
        # Outside the allowed namespaces: only the reconciler verbs, and only the named Secret.
        [flux_role] = [
            d for d in documents if d["kind"] == "Role" and d["metadata"]["namespace"] == "flux-system"
        ]
        assert granted([flux_role]) == reconcilers
        [credentials] = [
            d for d in documents if d["kind"] == "Role" and d["metadata"]["namespace"] == "backout"
        ]
        assert credentials["rules"] == [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["fleet-git"], "verbs": ["get"]}
        ]
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
    assert loaded.database_url is None, "a credential: only from the Secret, as BACKOUT_DATABASE_URL"
    assert loaded.gitops.enabled == (values == "all-on.yaml")
    if values == "all-on.yaml":
        # Git and provider tokens: references to the Secrets, in the release namespace.
        fleet, models = loaded.gitops.repositories
        assert fleet.credentials is not None and fleet.provider is not None
        assert fleet.credentials.token.secret_ref == SecretKeyRef(
            namespace="backout", name="fleet-git", key="token"
        )
        assert (fleet.provider.type, fleet.provider.token.secret_ref) == (
            "github",
            SecretKeyRef(namespace="backout", name="fleet-git", key="token"),
        )
        assert models.remote_url == "http://gitlab-mirror.git.svc:8080/platform/models.git"
        assert models.provider is not None and models.provider.type == "gitlab"
        assert models.provider.api_url == "https://gitlab.example/api/v4"
        assert (loaded.gitops.author.email, loaded.gitops.push_attempts) == ("backout@acme.example", 5)
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
        for deployment in (d for d in documents if d["kind"] == "Deployment"):
            [database] = [
                e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
                if e["name"] == "BACKOUT_DATABASE_URL"
            ]  # fmt: skip
            assert database["valueFrom"] == {"secretKeyRef": {"name": "backout-db", "key": "url"}}
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


def _can(apis: KubeApis, user: str, verb: str, resource: str, namespace: str) -> bool:
    """What the apiserver's RBAC authorizer answers for `user` doing `verb` on `resource`
    (`plural.group` or `plural`, optionally `/name`): a SubjectAccessReview, which needs no CRD."""
    kind, _, name = resource.partition("/")
    plural, _, group = kind.partition(".")
    review = AuthorizationV1Api(apis.api_client).create_subject_access_review(
        V1SubjectAccessReview(
            spec=V1SubjectAccessReviewSpec(
                user=user,
                groups=["system:serviceaccounts", f"system:serviceaccounts:{user.split(':')[2]}"],
                resource_attributes=V1ResourceAttributes(
                    verb=verb, group=group, resource=plural, namespace=namespace, name=name or None
                ),
            )
        )
    )
    assert review.status is not None
    return bool(review.status.allowed)


def test_the_gitops_rbac_lets_the_worker_suspend_reconcilers_only_where_it_should(
    helm_binary: Path, helm_env: None, kubectl_binary: Path, kube_cluster: LocalCluster, kube_apis: KubeApis,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The chart's RBAC objects applied for real; the apiserver says what the worker's ServiceAccount
    may do: get and patch Flux and Argo CD objects in an allowed namespace and in a reconciler
    namespace, nothing of the kind elsewhere, no other write in the reconciler namespace, and read
    the Git token's Secret but no other Secret of the release namespace."""
    kubectl = _kubectl(kubectl_binary, kube_cluster, tmp_path / "kube-cache")
    release_ns, allowed = _namespace(kube_apis, "bo-rel"), _namespace(kube_apis, "bo-app")
    flux, elsewhere = _namespace(kube_apis, "bo-flux"), _namespace(kube_apis, "bo-other")
    documents = template(
        helm_binary, release_ns, "--values", VALUES / "required.yaml", "--set-json", f'allowedNamespaces=["{allowed}"]',
        *gitops_values(flux),
    )  # fmt: skip
    rbac = [d for d in documents if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    run([*kubectl, "apply", "-f", _write(rbac, tmp_path / "rbac.yaml")])
    worker = f"system:serviceaccount:{release_ns}:{RELEASE}-worker"
    reconcilers = [
        "kustomizations.kustomize.toolkit.fluxcd.io",
        "helmreleases.helm.toolkit.fluxcd.io",
        "gitrepositories.source.toolkit.fluxcd.io",
        "applications.argoproj.io",
    ]
    allowed_calls = [
        *((verb, resource, namespace) for resource in reconcilers for verb in ("get", "patch") for namespace in (flux, allowed)),
        ("get", "secrets/fleet-git", release_ns),
    ]  # fmt: skip
    refused_calls = [
        *((verb, resource, elsewhere) for resource in reconcilers for verb in ("get", "patch")),
        *(("delete", resource, flux) for resource in reconcilers),
        ("patch", "deployments", flux), ("get", "configmaps", flux), ("get", "secrets", flux),
        ("get", "secrets/backout-db", release_ns), ("list", "secrets", release_ns),
    ]  # fmt: skip
    # The authorizer sees new Roles through its informers, a moment after they are stored.
    deadline = time.monotonic() + 60
    pending = list(allowed_calls)
    while pending := [call for call in pending if not _can(kube_apis, worker, *call)]:
        assert time.monotonic() < deadline, f"never allowed: {pending}"
        time.sleep(0.5)
    assert [call for call in refused_calls if _can(kube_apis, worker, *call)] == []


def test_the_shipped_gitops_rbac_grants_what_the_chart_grants(helm_binary: Path, helm_env: None) -> None:
    """deploy/rbac/ for installs without the chart: the same reconciler verbs, the same Secret rule."""
    documents = template(
        helm_binary, "backout", "--values", VALUES / "required.yaml", "--set-json", 'allowedNamespaces=["prod"]',
        *gitops_values("flux-system"),
    )  # fmt: skip
    chart_roles = {d["metadata"]["namespace"]: d for d in documents if d["kind"] == "Role"}
    rbac = REPO / "deploy" / "rbac"
    gitops = [
        d for d in yaml.safe_load_all((rbac / "backout-worker-gitops.yaml").read_text(encoding="utf-8")) if d
    ]
    credentials = [
        d
        for d in yaml.safe_load_all(
            (rbac / "backout-worker-git-credentials.yaml").read_text(encoding="utf-8")
        )
        if d
    ]
    [gitops_role] = [d for d in gitops if d["kind"] == "Role"]
    [credentials_role] = [d for d in credentials if d["kind"] == "Role"]
    assert (
        granted([gitops_role]) == granted([chart_roles["flux-system"]]) == calls_the_gitops_handshake_makes()
    )
    assert credentials_role["rules"] == chart_roles["backout"]["rules"]
    for bindings, role in ((gitops, gitops_role), (credentials, credentials_role)):
        [binding] = [d for d in bindings if d["kind"] == "RoleBinding"]
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "backout-worker", "namespace": "backout"}
        ]
