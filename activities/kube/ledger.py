"""The change ledger: every recent Kubernetes change as an incident-bundle `Change` with its undo handle.

Deployments: one change per revision, read from the ReplicaSets the Deployment
controls (`deployment.kubernetes.io/revision`), compared with the revision before it.
ConfigMaps and Secrets: one change per recorded version after the first (history.py).

Kind inference (documented in the README):
- `backout.dev/model-version`, `backout.dev/prompt-version`, `backout.dev/corpus-version`
  annotations (pod template or Deployment/ConfigMap metadata) changed -> model/prompt/corpus
- a container image changed -> image
- env, envFrom or mounted ConfigMap/Secret references changed -> config
- container resources changed -> scale
- ConfigMap data changed -> config; Secret data changed -> secret

An annotator may add to the listing what the cluster alone does not know: the GitOps one
(activities/gitops/changes.py) puts the Git source and the culprit commit on changes of objects
Flux or Argo CD applies.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple

from activities.kube import history
from activities.kube.client import KubeApis
from activities.kube.dry_run import NO_DRY_RUN, DryRun
from activities.kube.parallel import at_once
from activities.kube.reads import ClusterReads
from incidents.bundle import Change, RollbackHandle

# Adds to listed changes what other sources know about them (the same changes, in the same order);
# the listing's reads answer for the objects it listed.
ChangeAnnotator = Callable[[ClusterReads, list[Change]], list[Change]]

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
APPLIED_BY_ANNOTATION = "backout.dev/applied-by"
APPLIED_AT_ANNOTATION = "backout.dev/applied-at"
SERVICE_LABEL = "backout.dev/service"
AUTHOR_ANNOTATION = "backout.dev/author"
VERSION_ANNOTATIONS: dict[str, str] = {
    "backout.dev/model-version": "model",
    "backout.dev/prompt-version": "prompt",
    "backout.dev/corpus-version": "corpus",
}


def service_name(meta: Any) -> str:
    labels = meta.labels or {}
    return str(
        labels.get(SERVICE_LABEL) or labels.get("app.kubernetes.io/name") or labels.get("app") or meta.name
    )


def revision_of(replica_set: Any) -> int | None:
    value = (replica_set.metadata.annotations or {}).get(REVISION_ANNOTATION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def owned_replica_sets(apis: KubeApis, deployment: Any) -> list[Any]:
    """ReplicaSets controlled by `deployment`, oldest revision first."""
    selector = ",".join(f"{k}={v}" for k, v in (deployment.spec.selector.match_labels or {}).items())
    items = apis.apps.list_namespaced_replica_set(
        deployment.metadata.namespace, label_selector=selector
    ).items
    return controlled_by(deployment, items)


def controlled_by(deployment: Any, replica_sets: list[Any]) -> list[Any]:
    """The ReplicaSets among `replica_sets` that `deployment` controls, oldest revision first."""
    owned = [
        rs
        for rs in replica_sets
        if any(
            ref.controller and ref.uid == deployment.metadata.uid
            for ref in rs.metadata.owner_references or []
        )
        and revision_of(rs) is not None
    ]
    return sorted(owned, key=lambda rs: revision_of(rs) or 0)


def _containers(template: Any) -> list[Any]:
    spec = template.spec
    return [*(spec.init_containers or []), *(spec.containers or [])]


def _images(template: Any) -> dict[str, str]:
    return {container.name: container.image for container in _containers(template)}


def _config_refs(template: Any) -> list[Any]:
    refs: list[Any] = []
    for container in _containers(template):
        refs.append((container.name, _plain(container.env), _plain(container.env_from)))
    for volume in template.spec.volumes or []:
        refs.append((volume.name, _plain(volume.config_map), _plain(volume.secret), _plain(volume.projected)))
    return refs


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value.to_dict() if hasattr(value, "to_dict") else value


def _resources(template: Any) -> dict[str, Any]:
    return {container.name: _plain(container.resources) for container in _containers(template)}


def _version_annotations(*annotation_maps: dict[str, str] | None) -> dict[str, str]:
    merged: dict[str, str] = {}
    for mapping in annotation_maps:
        for key in VERSION_ANNOTATIONS:
            if mapping and key in mapping:
                merged[key] = mapping[key]
    return merged


def infer_deployment_change(previous: Any, current: Any) -> tuple[str, str, str]:
    """(kind, from_version, to_version) for the step from `previous` to `current`."""
    before_versions = _version_annotations(
        previous.metadata.annotations, previous.spec.template.metadata.annotations
    )
    after_versions = _version_annotations(
        current.metadata.annotations, current.spec.template.metadata.annotations
    )
    for key, kind in VERSION_ANNOTATIONS.items():
        if before_versions.get(key) != after_versions.get(key):
            return kind, before_versions.get(key, "none"), after_versions.get(key, "none")
    before_images, after_images = _images(previous.spec.template), _images(current.spec.template)
    if before_images != after_images:
        changed = [name for name in after_images if before_images.get(name) != after_images[name]] or list(
            before_images
        )
        return "image", str(before_images.get(changed[0], "none")), str(after_images.get(changed[0], "none"))
    revisions = (f"revision {revision_of(previous)}", f"revision {revision_of(current)}")
    if _config_refs(previous.spec.template) != _config_refs(current.spec.template):
        return "config", *revisions
    if _resources(previous.spec.template) != _resources(current.spec.template):
        return "scale", *revisions
    return "other", *revisions


def _change_time(deployment: Any, replica_set: Any, is_current: bool) -> datetime:
    """When the revision rolled out: creation, or for a re-used template when it was rolled back to."""
    created: datetime = replica_set.metadata.creation_timestamp
    annotations = replica_set.metadata.annotations or {}
    if REVISION_HISTORY_ANNOTATION not in annotations:
        return created
    if APPLIED_AT_ANNOTATION in annotations:
        try:
            return max(created, datetime.fromisoformat(annotations[APPLIED_AT_ANNOTATION]))
        except ValueError:
            pass
    if is_current:
        for condition in deployment.status.conditions or []:
            if condition.type == "Progressing" and condition.last_update_time is not None:
                return max(created, condition.last_update_time)
    return created


class RevisionEntry(NamedTuple):
    revision: int
    replica_set: Any
    started: datetime
    reconstructed: bool


def revision_timeline(deployment: Any, replica_sets: list[Any]) -> list[RevisionEntry]:
    """Every revision, including the ones a rollback renumbered.

    Rolling back re-uses the old ReplicaSet under a new revision number and keeps the old
    numbers in `deployment.kubernetes.io/revision-history`; the first of them is the
    original rollout, at the ReplicaSet's creation time.
    """
    entries: list[RevisionEntry] = []
    for replica_set in replica_sets:
        revision = revision_of(replica_set)
        if revision is None:
            continue
        is_current = replica_set is replica_sets[-1]
        entries.append(
            RevisionEntry(revision, replica_set, _change_time(deployment, replica_set, is_current), False)
        )
        earlier = (replica_set.metadata.annotations or {}).get(REVISION_HISTORY_ANNOTATION, "")
        numbers = sorted(int(part) for part in earlier.split(",") if part.strip().isdigit())
        if numbers:
            created = replica_set.metadata.creation_timestamp
            entries.append(RevisionEntry(numbers[0], replica_set, created, True))
    return sorted(entries, key=lambda entry: entry.revision)


def deployment_changes(deployment: Any, since: datetime, replica_sets: list[Any]) -> list[Change]:
    """The rollouts of `deployment` since `since`, from `replica_sets` (its namespace's, or its own)."""
    timeline = revision_timeline(deployment, controlled_by(deployment, replica_sets))
    namespace, name = deployment.metadata.namespace, deployment.metadata.name
    changes: list[Change] = []
    for previous, current in itertools.pairwise(timeline):
        if current.started < since:
            continue
        kind, from_version, to_version = infer_deployment_change(previous.replica_set, current.replica_set)
        generated = f"{kind}: {from_version} -> {to_version}"
        annotations = {} if current.reconstructed else (current.replica_set.metadata.annotations or {})
        previous_annotations = previous.replica_set.metadata.annotations or {}
        description = annotations.get(CHANGE_CAUSE_ANNOTATION) or generated
        author = annotations.get(AUTHOR_ANNOTATION)
        applied_by = annotations.get(APPLIED_BY_ANNOTATION)
        if applied_by and (
            previous.reconstructed or applied_by != previous_annotations.get(APPLIED_BY_ANNOTATION)
        ):
            author = "backout"
        changes.append(
            Change(
                id=f"k8s:deployment:{namespace}/{name}:rev{current.revision}",
                service=service_name(deployment.metadata),
                namespace=namespace,
                kind=kind,
                started_at=current.started,
                from_version=from_version,
                to_version=to_version,
                author=author,
                description=description,
                rollback=RollbackHandle(
                    type="deployment", name=name, namespace=namespace, revision=current.revision
                ),
            )
        )
    return changes


def _object_change(version: history.RecordedVersion, previous: history.RecordedVersion) -> Change:
    kind = "config" if version.kind == "configmap" else "secret"
    from_version, to_version = str(previous.version), str(version.version)
    for key, annotated_kind in VERSION_ANNOTATIONS.items():
        if previous.annotations.get(key) != version.annotations.get(key):
            kind = annotated_kind
            from_version = previous.annotations.get(key, "none")
            to_version = version.annotations.get(key, "none")
            break
    added = sorted(set(version.keys) - set(previous.keys))
    removed = sorted(set(previous.keys) - set(version.keys))
    detail = "; ".join(
        part
        for part in (
            f"added {', '.join(added)}" if added else "",
            f"removed {', '.join(removed)}" if removed else "",
        )
        if part
    )
    cause = version.annotations.get(CHANGE_CAUSE_ANNOTATION)
    description = cause or f"{version.kind} {version.name} version {previous.version} -> {version.version}"
    if detail and not cause:
        description += f" ({detail})"
    return Change(
        id=f"k8s:{version.kind}:{version.namespace}/{version.name}:v{version.version}",
        service=version.annotations.get(SERVICE_LABEL) or version.name,
        namespace=version.namespace,
        kind=kind,
        started_at=version.changed_at,
        from_version=from_version,
        to_version=to_version,
        author=_object_author(previous, version),
        description=description,
        rollback=RollbackHandle(
            type=version.kind, name=version.name, namespace=version.namespace, version=str(version.version)
        ),
    )


def _object_author(previous: history.RecordedVersion, version: history.RecordedVersion) -> str | None:
    """backout when this version is a restore backout applied (a new applied-by stamp), else the annotation."""
    stamp = version.annotations.get(APPLIED_BY_ANNOTATION)
    if stamp and stamp != previous.annotations.get(APPLIED_BY_ANNOTATION):
        return "backout"
    return version.annotations.get(AUTHOR_ANNOTATION)


def object_changes(
    apis: KubeApis,
    namespace: str,
    since: datetime,
    listed: dict[history.ObjectKind, list[Any]] | None = None,
) -> list[Change]:
    """ConfigMap and Secret changes from their recorded versions; `listed` (every history object of
    the namespace, by kind) saves listing them again."""
    changes: list[Change] = []
    if listed is None:
        config_maps, secrets = at_once(
            partial(
                apis.core.list_namespaced_config_map,
                namespace,
                label_selector=f"{history.HISTORY_KIND_LABEL}=configmap",
            ),
            partial(
                apis.core.list_namespaced_secret,
                namespace,
                label_selector=f"{history.HISTORY_KIND_LABEL}=secret",
            ),
        )
        listed = {"configmap": config_maps.items, "secret": secrets.items}
    kinds: tuple[tuple[history.ObjectKind, Any], ...] = (
        ("configmap", listed["configmap"]),
        ("secret", listed["secret"]),
    )
    for kind, items in kinds:
        by_owner: dict[str, list[history.RecordedVersion]] = {}
        for item in items:
            owner = (item.metadata.annotations or {}).get(history.HISTORY_NAME_ANNOTATION)
            if owner:
                by_owner.setdefault(owner, []).append(
                    history.to_recorded_version(kind, namespace, owner, item)
                )  # type: ignore[arg-type]
        for versions in by_owner.values():
            versions.sort(key=lambda v: v.version)
            for previous, version in itertools.pairwise(versions):
                if version.changed_at >= since:
                    changes.append(_object_change(version, previous))
    return changes


def sweeps_first(namespace: str, record_first: bool, dry_run: DryRun) -> bool:
    """Whether list_changes records `namespace`'s ConfigMaps and Secrets (listing every one of them)
    before listing its changes."""
    return record_first and not dry_run.applies(namespace)


def list_changes(
    apis: KubeApis,
    namespaces: list[str],
    since: datetime,
    record_first: bool = True,
    dry_run: DryRun = NO_DRY_RUN,
    annotate: ChangeAnnotator | None = None,
    reads: ClusterReads | None = None,
) -> list[Change]:
    """Every Deployment, ConfigMap and Secret change in `namespaces` since `since`, oldest first.

    `record_first` records ConfigMap/Secret content first, except where `dry_run` applies (a
    history write there would be a dry run: it stores nothing the listing could read). `reads`
    shares the listing's reads with other parts reading the cluster at the same time."""
    reads = reads if reads is not None else ClusterReads(apis)
    changes: list[Change] = []
    for namespace in namespaces:

        def of_deployments(namespace: str = namespace) -> list[Change]:
            # One list of the namespace's ReplicaSets, made with the Deployments' list, serves every
            # Deployment: one round trip instead of a list per Deployment after them.
            deployments, replica_sets = at_once(
                partial(reads.deployments, namespace),
                lambda: apis.apps.list_namespaced_replica_set(namespace).items,
            )
            return [
                change
                for deployment in deployments
                for change in deployment_changes(deployment, since, replica_sets)
            ]

        listed: dict[history.ObjectKind, list[Any]] | None = None
        if sweeps_first(namespace, record_first, dry_run):
            # Recording ConfigMaps and Secrets and reading the Deployments do not depend on each other.
            swept, deployment_changes_found = at_once(
                partial(history.sweep, apis, namespace, reads=reads), of_deployments
            )
            # Nothing written since the sweep listed the history objects: they need no second list.
            if not swept.recorded:
                listed = swept.history
        else:
            deployment_changes_found = of_deployments()
        changes.extend(deployment_changes_found)
        changes.extend(object_changes(apis, namespace, since, listed))
    ordered = sorted(changes, key=lambda change: (change.started_at, change.id))
    return annotate(reads, ordered) if annotate is not None else ordered
