"""Recognising the reconciler from labels and annotations, and reading Flux revisions."""

from __future__ import annotations

from activities.gitops.ownership import recognise, revision_sha

SHA = "0123456789abcdef0123456789abcdef01234567"


def configmap(
    labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "prompt",
            "namespace": "chat",
            "labels": labels or {},
            "annotations": annotations or {},
        },
    }


def test_flux_kustomization_and_helm_release_labels() -> None:
    owner = recognise(
        configmap(
            {
                "kustomize.toolkit.fluxcd.io/name": "apps",
                "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
            }
        )
    )
    assert owner is not None and (owner.tool, owner.kind, owner.name, owner.namespace) == (
        "flux",
        "Kustomization",
        "apps",
        "flux-system",
    )
    # A HelmRelease's objects also carry the labels of the Kustomization that applied the release: the release owns them.
    both = {
        "kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
        "helm.toolkit.fluxcd.io/name": "chat",
        "helm.toolkit.fluxcd.io/namespace": "chat",
    }
    owner = recognise(configmap(both))
    assert owner is not None and (owner.kind, owner.name, owner.namespace) == ("HelmRelease", "chat", "chat")
    assert recognise(configmap({"kustomize.toolkit.fluxcd.io/name": "apps"})) is None, (
        "half a label pair is no evidence"
    )


def test_argocd_tracking_annotation_must_name_this_object() -> None:
    owner = recognise(
        configmap(annotations={"argocd.argoproj.io/tracking-id": "chat-app:/ConfigMap:chat/prompt"})
    )
    assert owner is not None and (owner.tool, owner.name, owner.namespace) == ("argocd", "chat-app", "argocd")
    assert (
        recognise(configmap(annotations={"argocd.argoproj.io/tracking-id": "chat-app:/ConfigMap:chat/other"}))
        is None
    )
    assert (
        recognise(
            configmap(annotations={"argocd.argoproj.io/tracking-id": "chat-app:apps/ConfigMap:chat/prompt"})
        )
        is None
    )
    qualified = recognise(
        configmap(annotations={"argocd.argoproj.io/tracking-id": "team-a_chat:/ConfigMap:chat/prompt"}),
        "gitops",
    )
    assert qualified is not None and (qualified.name, qualified.namespace) == ("chat", "team-a")
    labelled = recognise(configmap({"app.kubernetes.io/instance": "chat-app"}), "gitops")
    assert labelled is not None and labelled.namespace == "gitops" and labelled.evidence.startswith("label")
    assert recognise(configmap({"app": "x"})) is None


def test_revisions_in_every_flux_format() -> None:
    for text in (f"main@sha1:{SHA}", f"sha1:{SHA}", f"refs/heads/main@sha1:{SHA}", f"main/{SHA}", SHA):
        assert revision_sha(text) == SHA, text
    assert revision_sha("v1.2.3@sha256:abc") is None
    assert revision_sha(None) is None
