"""Which GitOps reconciler applies an object, and where that reconciler reads it in Git.

Flux labels what it applies with its inventory labels
(`kustomize.toolkit.fluxcd.io/name`/`namespace`, `helm.toolkit.fluxcd.io/name`/`namespace`).
Argo CD marks objects with the tracking annotation
`argocd.argoproj.io/tracking-id: <app>:<group>/<kind>:<namespace>/<name>` (its default since
v3) or the label `app.kubernetes.io/instance: <app>` (the older default). Helm charts set that
same label for their own release name, so label evidence counts only when an Application of
that name exists. With applications in any namespace Argo CD names them `<namespace>_<app>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from activities.gitops.manifests import normalize_path
from incidents.gitops import GitSource, ObjectRef, Ownership, ReconcilerRef

FLUX_KUSTOMIZE_NAME = "kustomize.toolkit.fluxcd.io/name"
FLUX_KUSTOMIZE_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"
FLUX_HELM_NAME = "helm.toolkit.fluxcd.io/name"
FLUX_HELM_NAMESPACE = "helm.toolkit.fluxcd.io/namespace"
ARGOCD_TRACKING_ID = "argocd.argoproj.io/tracking-id"
ARGOCD_INSTANCE_LABEL = "app.kubernetes.io/instance"
FLUX_DEFAULT_BRANCH = "master"  # GitRepository without spec.ref tracks master (Flux's documented default)
SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class CustomResource:
    group: str
    version: str
    plural: str


KUSTOMIZATION = CustomResource("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
HELM_RELEASE = CustomResource("helm.toolkit.fluxcd.io", "v2", "helmreleases")
GIT_REPOSITORY = CustomResource("source.toolkit.fluxcd.io", "v1", "gitrepositories")
APPLICATION = CustomResource("argoproj.io", "v1alpha1", "applications")
RESOURCES: dict[str, CustomResource] = {
    "Kustomization": KUSTOMIZATION,
    "HelmRelease": HELM_RELEASE,
    "Application": APPLICATION,
}


class OwnershipError(LookupError):
    """The owner named on the object cannot be read; the message says which and why."""


# All that recognise() and OwnershipResolver.resolve() read of an object: apiVersion, kind and these
# metadata fields.
OWNERSHIP_METADATA = ("name", "namespace", "labels", "annotations")


def object_ref(obj: dict[str, Any]) -> ObjectRef:
    metadata = obj.get("metadata") or {}
    return ObjectRef(
        api_version=str(obj.get("apiVersion", "v1")),
        kind=str(obj.get("kind", "")),
        name=str(metadata.get("name", "")),
        namespace=metadata.get("namespace"),
    )


def argocd_instance(metadata: dict[str, Any], ref: ObjectRef) -> tuple[str, str] | None:
    """(application instance name, evidence) from the tracking annotation, else the instance label."""
    tracking = (metadata.get("annotations") or {}).get(ARGOCD_TRACKING_ID)
    if tracking:
        app, _, rest = tracking.partition(":")
        group_kind, _, namespace_name = rest.partition(":")
        group = ref.api_version.rpartition("/")[0]
        # Argo CD ignores a tracking id copied onto another object; so do we.
        if (
            app
            and group_kind == f"{group}/{ref.kind}"
            and namespace_name == f"{ref.namespace or ''}/{ref.name}"
        ):
            return app, f"annotation {ARGOCD_TRACKING_ID}={tracking}"
    instance = (metadata.get("labels") or {}).get(ARGOCD_INSTANCE_LABEL)
    if instance:
        return instance, f"label {ARGOCD_INSTANCE_LABEL}={instance}"
    return None


def recognise(obj: dict[str, Any], argocd_namespace: str = "argocd") -> ReconcilerRef | None:
    """The reconciler an object's labels or annotations name, without reading the cluster."""
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    ref = object_ref(obj)
    for name_label, namespace_label, kind in (
        (FLUX_HELM_NAME, FLUX_HELM_NAMESPACE, "HelmRelease"),
        (FLUX_KUSTOMIZE_NAME, FLUX_KUSTOMIZE_NAMESPACE, "Kustomization"),
    ):
        if labels.get(name_label) and labels.get(namespace_label):
            return ReconcilerRef(
                tool="flux",
                kind=kind,  # type: ignore[arg-type]
                name=labels[name_label],
                namespace=labels[namespace_label],
                evidence=f"labels {name_label}={labels[name_label]}, {namespace_label}={labels[namespace_label]}",
            )
    found = argocd_instance(metadata, ref)
    if found is None:
        return None
    instance, evidence = found
    namespace, _, name = instance.rpartition("_")
    return ReconcilerRef(
        tool="argocd",
        kind="Application",
        name=name,
        namespace=namespace or argocd_namespace,
        evidence=evidence,
    )


def revision_sha(revision: str | None) -> str | None:
    """The commit SHA in a Flux revision (`main@sha1:<sha>`, `sha1:<sha>`, legacy `main/<sha>`) or a bare SHA."""
    if not revision:
        return None
    candidate = revision.rpartition(":")[2] if ":" in revision else revision.rpartition("/")[2]
    return candidate if SHA.match(candidate) else None


class OwnershipResolver:
    """Reads reconciler objects through a CustomObjectsApi to resolve an object's Git source."""

    def __init__(self, custom_api: Any, argocd_namespaces: list[str] | None = None) -> None:
        self.custom = custom_api
        self.argocd_namespaces = argocd_namespaces or ["argocd"]

    def read(self, resource: CustomResource, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                resource.group, resource.version, namespace, resource.plural, name
            )
            return found
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status == 404:
                return None
            raise OwnershipError(
                f"cannot read {resource.plural}.{resource.group} {namespace}/{name}: HTTP {status or type(exc).__name__}"
            ) from None

    def resolve(self, obj: dict[str, Any]) -> Ownership | None:
        """The object's reconciler and Git source; None when no reconciler owns it."""
        candidate = recognise(obj, self.argocd_namespaces[0])
        if candidate is None:
            return None
        ref = object_ref(obj)
        if candidate.kind == "Kustomization":
            return self._kustomization(ref, candidate)
        if candidate.kind == "HelmRelease":
            return self._helm_release(ref, candidate)
        return self._application(ref, candidate)

    def _git_repository_source(
        self, namespace: str, name: str, path: str | None, target_namespace: str | None
    ) -> tuple[GitSource | None, str | None]:
        repository = self.read(GIT_REPOSITORY, namespace, name)
        if repository is None:
            return None, f"GitRepository {namespace}/{name} not found"
        spec = repository.get("spec") or {}
        git_ref = spec.get("ref") or {}
        branch = git_ref.get("branch")
        if not branch and not any(git_ref.get(key) for key in ("tag", "semver", "commit", "name")):
            branch = FLUX_DEFAULT_BRANCH
        if not branch and str(git_ref.get("name", "")).startswith("refs/heads/"):
            branch = str(git_ref["name"]).removeprefix("refs/heads/")
        artifact = (repository.get("status") or {}).get("artifact") or {}
        source = GitSource(
            repo_url=str(spec.get("url", "")),
            branch=branch,
            path=normalize_path(path),
            revision=revision_sha(artifact.get("revision")),
            target_namespace=target_namespace,
        )
        return source, None

    def _kustomization(self, ref: ObjectRef, owner: ReconcilerRef) -> Ownership:
        kustomization = self.read(KUSTOMIZATION, owner.namespace, owner.name)
        if kustomization is None:
            return Ownership(object=ref, reconciler=owner, unresolved_reason=f"{owner.describe()} not found")
        spec = kustomization.get("spec") or {}
        source_ref = spec.get("sourceRef") or {}
        if source_ref.get("kind") != "GitRepository":
            return Ownership(
                object=ref,
                reconciler=owner,
                unresolved_reason=f"{owner.describe()} reads a {source_ref.get('kind')}, not a GitRepository",
            )
        source, reason = self._git_repository_source(
            source_ref.get("namespace") or owner.namespace,
            str(source_ref.get("name", "")),
            spec.get("path"),
            spec.get("targetNamespace"),
        )
        if source is not None:
            # What the Kustomization applied, which may trail the GitRepository's newest artifact.
            applied = revision_sha((kustomization.get("status") or {}).get("lastAppliedRevision"))
            source.revision = applied or source.revision
        return Ownership(object=ref, reconciler=owner, source=source, unresolved_reason=reason)

    def _helm_release(self, ref: ObjectRef, owner: ReconcilerRef) -> Ownership:
        release = self.read(HELM_RELEASE, owner.namespace, owner.name)
        if release is None:
            return Ownership(object=ref, reconciler=owner, unresolved_reason=f"{owner.describe()} not found")
        chart = ((release.get("spec") or {}).get("chart") or {}).get("spec") or {}
        source_ref = chart.get("sourceRef") or {}
        if source_ref.get("kind") != "GitRepository":
            return Ownership(
                object=ref,
                reconciler=owner,
                unresolved_reason=f"{owner.describe()} takes its chart from a {source_ref.get('kind') or 'chartRef'}, "
                "not a GitRepository: its values live in the HelmRelease manifest itself",
            )
        source, reason = self._git_repository_source(
            source_ref.get("namespace") or owner.namespace,
            str(source_ref.get("name", "")),
            chart.get("chart"),
            None,
        )
        return Ownership(object=ref, reconciler=owner, source=source, unresolved_reason=reason)

    def _application(self, ref: ObjectRef, owner: ReconcilerRef) -> Ownership | None:
        qualified = "_" in owner.evidence.split("=", 1)[1].split(":", 1)[0]
        namespaces = [owner.namespace] if qualified else self.argocd_namespaces
        application = None
        for namespace in namespaces:
            application = self.read(APPLICATION, namespace, owner.name)
            if application is not None:
                owner = owner.model_copy(update={"namespace": namespace})
                break
        if application is None:
            if owner.evidence.startswith("label"):
                return None  # the label of a Helm release, not of Argo CD
            return Ownership(object=ref, reconciler=owner, unresolved_reason=f"{owner.describe()} not found")
        spec = application.get("spec") or {}
        sources = [spec["source"]] if spec.get("source") else list(spec.get("sources") or [])
        git_indexes = [
            i
            for i, source in enumerate(sources)
            if source.get("path") is not None and not source.get("chart")
        ]
        if not git_indexes:
            return Ownership(
                object=ref, reconciler=owner, unresolved_reason=f"{owner.describe()} has no Git path source"
            )
        index = git_indexes[0]
        source = sources[index]
        target = str(source.get("targetRevision") or "HEAD")
        # "HEAD" stays: the remote's default branch, resolved when Git is read. A pinned SHA tracks no branch.
        branch = None if SHA.match(target) else target.removeprefix("refs/heads/")
        sync = (application.get("status") or {}).get("sync") or {}
        revisions = sync.get("revisions") or []
        revision = (
            sync.get("revision")
            if len(sources) == 1
            else (revisions[index] if index < len(revisions) else None)
        )
        return Ownership(
            object=ref,
            reconciler=owner,
            source=GitSource(
                repo_url=str(source.get("repoURL", "")),
                branch=branch,
                path=normalize_path(source.get("path")),
                revision=revision if revision and SHA.match(revision) else None,
                target_namespace=(spec.get("destination") or {}).get("namespace"),
            ),
        )
