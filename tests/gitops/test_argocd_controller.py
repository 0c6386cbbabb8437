"""The same problem and handshake under Argo CD's real application controller and repo-server
(argo-cd v3.6.1 built from its Go module), with automated sync and self-heal on."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi
from temporalio.client import Client

from activities.gitops.activities import (
    FindCulpritRequest,
    GitOpsActivities,
    ResolveOwnerRequest,
    ResumeRequest,
    RevertLandedRequest,
    SuspendRequest,
    VerifyReconciledRequest,
    WriteRevertRequest,
)
from activities.kube import history
from activities.kube.client import KubeApis
from config import Settings
from devstack.cluster.local import LocalCluster
from devstack.gitops.argocd import ArgoCD
from devstack.receivers.pagerduty import PagerDutyReceiver
from devstack.receivers.server import TlsFiles
from devstack.receivers.slack import SlackReceiver
from incidents.gitops import ObjectRef
from tests.gitops.conftest import (
    GIT_TOKEN,
    GIT_USER,
    ConfigMapHistory,
    Fleet,
    configmap_manifest,
    ensure_git_auth,
    gitops_config,
    wait_until,
)
from tests.gitops.test_handshake import HOLD_S, stays
from tests.gitops.test_incident_workflow import (
    Incident,
    reverted_and_reconciled,
    rolled_back,
    worker_settings,
)
from tests.gitops.test_problem_is_real import BAD, GOOD, backout

pytestmark = [pytest.mark.kube, pytest.mark.slow]

ARGOCD_NAMESPACE = "argocd"


@pytest.fixture(scope="session")
def argocd(kube_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArgoCD]:
    controller = ArgoCD(kube_cluster.kubeconfig, tmp_path_factory.mktemp("argocd"), ARGOCD_NAMESPACE)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


class ArgoSetup:
    """An Application (automated sync, self-heal) applying a fleet repository into the test namespace."""

    def __init__(self, argocd: ArgoCD, apis: KubeApis, namespace: str, fleet: Fleet) -> None:
        self.argocd = argocd
        self.apis = apis
        self.namespace = namespace
        self.fleet = fleet
        self.custom = CustomObjectsApi(apis.api_client)
        self.name = f"chat-{uuid.uuid4().hex[:8]}"

    def create(self) -> None:
        self.argocd.add_repository(self.fleet.url, GIT_USER, GIT_TOKEN)
        app = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": self.name, "namespace": ARGOCD_NAMESPACE},
            "spec": {
                "project": "default",
                "source": {"repoURL": self.fleet.url, "path": "apps", "targetRevision": "main"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": self.namespace},
                "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
            },
        }
        self.custom.create_namespaced_custom_object(
            "argoproj.io", "v1alpha1", ARGOCD_NAMESPACE, "applications", app
        )

    def application(self) -> dict[str, Any]:
        found: Any = self.custom.get_namespaced_custom_object(
            "argoproj.io", "v1alpha1", ARGOCD_NAMESPACE, "applications", self.name
        )
        return dict(found)

    def refresh(self) -> None:
        body = {"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}
        self.custom.patch_namespaced_custom_object(
            "argoproj.io", "v1alpha1", ARGOCD_NAMESPACE, "applications", self.name, body
        )

    def synced_at(self, sha: str) -> bool:
        sync = (self.application().get("status") or {}).get("sync") or {}
        return bool(sync.get("status") == "Synced" and sync.get("revision") == sha)

    def wait_synced(self, sha: str, timeout_s: float = 90.0) -> None:
        self.refresh()
        done = wait_until(lambda: self.synced_at(sha), timeout_s)
        assert done, f"Argo CD did not sync {sha[:12]}: {self.application().get('status')}"

    def configmap_data(self) -> dict[str, str] | None:
        try:
            return dict(self.apis.core.read_namespaced_config_map("prompt-config", self.namespace).data or {})
        except Exception:
            return None


@pytest.fixture
def argo_setup(argocd: ArgoCD, kube_apis: KubeApis, kube_namespace: str, fleet: Fleet) -> ArgoSetup:
    return ArgoSetup(argocd, kube_apis, kube_namespace, fleet)


def bad_prompt_synced(setup: ArgoSetup) -> str:
    good = setup.fleet.commit(
        {"apps/prompt.yaml": configmap_manifest("prompt-config", setup.namespace, GOOD)},
        "prompt: ground answers",
    )
    setup.create()
    setup.wait_synced(good)
    assert wait_until(lambda: setup.configmap_data() == GOOD, 30)
    history.record_now(setup.apis, setup.namespace)
    bad = setup.fleet.commit(
        {"apps/prompt.yaml": configmap_manifest("prompt-config", setup.namespace, BAD)},
        "prompt: let the model improvise",
    )
    setup.wait_synced(bad)
    assert wait_until(lambda: setup.configmap_data() == BAD, 30)
    history.record_now(setup.apis, setup.namespace)
    return bad


def test_argocd_self_heal_undoes_a_plain_rollback(argo_setup: ArgoSetup, kube_cluster: LocalCluster) -> None:
    bad_prompt_synced(argo_setup)
    contents = ConfigMapHistory(argo_setup.apis, argo_setup.namespace, "prompt-config")
    rolled = backout(
        ["rollback", "configmap/prompt-config", "-n", argo_setup.namespace], kube_cluster.kubeconfig
    )
    assert rolled.returncode == 0, rolled.stderr
    reapplied = wait_until(lambda: contents.seen[-2:] == [GOOD, BAD], timeout_s=60)
    seen = contents.stop()
    assert reapplied, f"expected the good prompt restored, then self-heal re-applying the bad one; saw {seen}"


async def test_argocd_handshake_keeps_the_rollback(
    argo_setup: ArgoSetup,
    kube_cluster: LocalCluster,
    kube_apis: KubeApis,
    kube_namespace: str,
    fleet: Fleet,
    tmp_path: Path,
    make_activities: Callable[..., GitOpsActivities],
) -> None:
    bad = bad_prompt_synced(argo_setup)
    activities = make_activities()
    activities.config.argocd_namespaces = [ARGOCD_NAMESPACE]
    target = ObjectRef(api_version="v1", kind="ConfigMap", name="prompt-config", namespace=kube_namespace)
    owned = await activities.resolve_owner(ResolveOwnerRequest(object=target))
    ownership = owned.ownership
    assert ownership is not None, owned.message
    assert ownership.reconciler.describe() == f"Application/{ARGOCD_NAMESPACE}/{argo_setup.name}"
    assert ownership.reconciler.evidence.startswith("annotation argocd.argoproj.io/tracking-id=")
    assert ownership.source is not None and ownership.source.revision == bad
    found = await activities.find_culprit(FindCulpritRequest(ownership=ownership))
    assert found.culprit is not None and found.culprit.commit.sha == bad, found.message

    suspended = await activities.suspend(
        SuspendRequest(incident_id="inc-argo-1", reconciler=ownership.reconciler)
    )
    assert suspended.record is not None and suspended.record.original_automated == {
        "prune": True,
        "selfHeal": True,
    }
    rolled = backout(["rollback", "configmap/prompt-config", "-n", kube_namespace], kube_cluster.kubeconfig)
    assert rolled.returncode == 0, rolled.stderr
    assert stays(lambda: argo_setup.configmap_data() == GOOD, HOLD_S), "auto-sync off: nothing re-applies"

    written = await activities.write_revert(
        WriteRevertRequest(incident_id="inc-argo-1", culprit=found.culprit, mode="push")
    )
    assert written.outcome == "Successful" and written.revert is not None, written.message
    landed = await activities.revert_landed(
        RevertLandedRequest(culprit=found.culprit, revert_sha=written.revert.sha)
    )
    assert landed.landed
    resumed = await activities.resume(ResumeRequest(record=suspended.record))
    assert resumed.resumed, resumed.message
    assert argo_setup.application()["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    reconciled = await activities.verify_reconciled(
        VerifyReconciledRequest(
            ownership=ownership, expected_revision=written.revert.sha, timeout_s=90, poll_s=1
        )
    )
    assert reconciled.outcome == "Successful", reconciled.message
    assert reconciled.status is not None and reconciled.status.sync_status == "Synced"
    assert stays(lambda: argo_setup.configmap_data() == GOOD, HOLD_S)


@pytest.mark.temporal
async def test_the_real_workflow_keeps_an_argocd_rollback(
    argo_setup: ArgoSetup,
    kube_cluster: LocalCluster,
    temporal_client: Client,
    backout_settings: Settings,
    receivers_tls: TlsFiles,
    pagerduty_receiver: PagerDutyReceiver,
    slack_receiver: SlackReceiver,
) -> None:
    """The whole IncidentWorkflow (a real worker, every activity the product registers) on an
    Argo CD Application with automated sync and self-heal: auto-sync off, rollback, the revert pushed
    to the tracked branch, recovery verified, auto-sync back on exactly as it was, and Argo CD
    syncing the revert keeps the good prompt."""
    bad = bad_prompt_synced(argo_setup)
    ensure_git_auth(argo_setup.apis, argo_setup.namespace)
    gitops = gitops_config(
        argo_setup.fleet, argo_setup.namespace, backout_settings.state_dir / "gitops-cache"
    )
    gitops = gitops.model_copy(update={"argocd_namespaces": [ARGOCD_NAMESPACE]})
    settings = worker_settings(
        backout_settings,
        kube_cluster,
        argo_setup.namespace,
        gitops,
        receivers_tls,
        pagerduty_receiver,
        slack_receiver,
    )
    view = await Incident(settings, temporal_client, argo_setup, "revert_push").run(rolled_back)

    reconciler = f"Application/{ARGOCD_NAMESPACE}/{argo_setup.name}"
    progress = reverted_and_reconciled(view, reconciler, bad, argo_setup.fleet)
    assert progress.revert is not None and progress.revert.revert is not None
    revert_sha = progress.revert.revert.sha
    assert argo_setup.application()["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert argo_setup.synced_at(revert_sha), argo_setup.application().get("status")
    assert stays(lambda: argo_setup.configmap_data() == GOOD, HOLD_S), (
        "self-heal is back on and keeps the revert"
    )
    assert ("resolve", pagerduty_receiver.actions()[0][1]) in pagerduty_receiver.actions()
