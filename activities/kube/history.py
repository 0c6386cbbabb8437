"""ConfigMap and Secret history, kept in the cluster itself (as Helm keeps releases).

Kubernetes keeps no previous versions of a ConfigMap or Secret, so the recorder copies
each distinct content it sees into a history object in the same namespace:
ConfigMaps into ConfigMaps, Secrets into Secrets (values never leave Secrets), named
`backout-history.<cm|secret>.<name>.v<N>` and labelled with the owner. History lives
as long as the namespace, so it survives backout restarts; a restarted recorder
catches up with a full sweep before it resumes watching. Edits made while no recorder
runs collapse into one version: only content that was observed can be restored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, NamedTuple, Protocol

from kubernetes import watch
from kubernetes.client import V1ConfigMap, V1ObjectMeta, V1OwnerReference, V1Secret
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from activities.kube.client import KubeApis, apis_from_settings
from activities.kube.dry_run import NO_DRY_RUN, SERVER_DRY_RUN, DryRun
from activities.kube.parallel import at_once
from activities.kube.reads import ClusterReads
from config import Settings

log = logging.getLogger(__name__)

ObjectKind = Literal["configmap", "secret"]
HISTORY_OF_LABEL = "backout.dev/history-of"
HISTORY_KIND_LABEL = "backout.dev/history-kind"
HISTORY_VERSION_LABEL = "backout.dev/history-version"
HISTORY_NAME_ANNOTATION = "backout.dev/history-of-name"
RECORDED_AT_ANNOTATION = "backout.dev/recorded-at"
CHANGED_AT_ANNOTATION = "backout.dev/changed-at"
DIGEST_ANNOTATION = "backout.dev/digest"
SOURCE_ANNOTATIONS = "backout.dev/source-annotations"
TRACK_ANNOTATION = "backout.dev/track"
HISTORY_SECRET_TYPE = "backout.dev/history"
KEEP_VERSIONS = 20
# Secret values are copied too, so fewer of them linger: each copy is owned by the Secret it
# copies (deleted with it by the garbage collector) and only this many are kept.
KEEP_SECRET_VERSIONS = 5
SKIP_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
SKIP_CONFIGMAPS = frozenset({"kube-root-ca.crt"})
SKIP_SECRET_TYPES = frozenset(
    {"kubernetes.io/service-account-token", "helm.sh/release.v1", HISTORY_SECRET_TYPE}
)
ACTION_LOG_PREFIX = "backout-"


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


class RecordedVersion(BaseModel):
    """One recorded content of a ConfigMap or Secret (contents are loaded separately)."""

    kind: ObjectKind
    namespace: str
    name: str
    version: int
    recorded_at: datetime
    changed_at: datetime
    history_object: str
    keys: list[str]
    annotations: dict[str, str]


def label_value(name: str) -> str:
    """Object names may be 253 chars, label values only 63: long names go by digest."""
    return name if len(name) <= 63 else "h-" + hashlib.sha256(name.encode()).hexdigest()[:40]


def history_object_name(kind: ObjectKind, name: str, version: int) -> str:
    short = "cm" if kind == "configmap" else "secret"
    candidate = f"backout-history.{short}.{name}.v{version}"
    if len(candidate) <= 253:
        return candidate
    return f"backout-history.{short}.{label_value(name)}.v{version}"


def content_of(obj: Any) -> dict[str, dict[str, str]]:
    return {"data": dict(obj.data or {}), "binaryData": dict(getattr(obj, "binary_data", None) or {})}


def _digest(content: dict[str, dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _last_write_time(meta: Any) -> datetime:
    times = [entry.time for entry in meta.managed_fields or [] if entry.time is not None]
    times.append(meta.creation_timestamp or datetime.now(UTC))
    return max(times)


def is_tracked(kind: ObjectKind, obj: Any) -> bool:
    meta = obj.metadata
    labels = meta.labels or {}
    annotations = meta.annotations or {}
    if meta.namespace in SKIP_NAMESPACES or HISTORY_OF_LABEL in labels:
        return False
    if annotations.get(TRACK_ANNOTATION, "").lower() == "false" or meta.name.startswith(ACTION_LOG_PREFIX):
        return False
    if kind == "configmap":
        return meta.name not in SKIP_CONFIGMAPS
    return (getattr(obj, "type", None) or "Opaque") not in SKIP_SECRET_TYPES


def _selector(kind: ObjectKind, name: str) -> str:
    return f"{HISTORY_OF_LABEL}={label_value(name)},{HISTORY_KIND_LABEL}={kind}"


def _list_history_objects(apis: KubeApis, kind: ObjectKind, namespace: str, name: str) -> list[Any]:
    selector = _selector(kind, name)
    if kind == "configmap":
        items = apis.core.list_namespaced_config_map(namespace, label_selector=selector).items
    else:
        items = apis.core.list_namespaced_secret(namespace, label_selector=selector).items
    owned = [i for i in items if (i.metadata.annotations or {}).get(HISTORY_NAME_ANNOTATION) == name]
    return sorted(owned, key=lambda item: int(item.metadata.labels[HISTORY_VERSION_LABEL]))


def to_recorded_version(kind: ObjectKind, namespace: str, name: str, history: Any) -> RecordedVersion:
    annotations = history.metadata.annotations or {}
    content = content_of(history)
    return RecordedVersion(
        kind=kind,
        namespace=namespace,
        name=name,
        version=int(history.metadata.labels[HISTORY_VERSION_LABEL]),
        recorded_at=datetime.fromisoformat(annotations[RECORDED_AT_ANNOTATION]),
        changed_at=datetime.fromisoformat(
            annotations.get(CHANGED_AT_ANNOTATION, annotations[RECORDED_AT_ANNOTATION])
        ),
        history_object=history.metadata.name,
        keys=sorted({*content["data"], *content["binaryData"]}),
        annotations=json.loads(annotations.get(SOURCE_ANNOTATIONS, "{}")),
    )


def list_versions(apis: KubeApis, kind: ObjectKind, namespace: str, name: str) -> list[RecordedVersion]:
    return [
        to_recorded_version(kind, namespace, name, item)
        for item in _list_history_objects(apis, kind, namespace, name)
    ]


def load_version_content(
    apis: KubeApis, kind: ObjectKind, namespace: str, name: str, version: int
) -> dict[str, dict[str, str]] | None:
    """The exact data/binaryData of a recorded version, or None if it is not recorded."""
    object_name = history_object_name(kind, name, version)
    try:
        if kind == "configmap":
            return content_of(apis.core.read_namespaced_config_map(object_name, namespace))
        return content_of(apis.core.read_namespaced_secret(object_name, namespace))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _same_content(latest: Any, kind: ObjectKind, content: dict[str, dict[str, str]]) -> bool:
    if kind == "configmap":
        return bool((latest.metadata.annotations or {}).get(DIGEST_ANNOTATION) == _digest(content))
    return content_of(latest) == content


def _user_annotations(meta: Any) -> dict[str, str]:
    skip = ("kubectl.kubernetes.io/last-applied-configuration",)
    return {k: v for k, v in (meta.annotations or {}).items() if k not in skip}


def record_object(
    apis: KubeApis,
    kind: ObjectKind,
    obj: Any,
    known_history: list[Any] | None = None,
    dry_run: bool = False,
) -> RecordedVersion | None:
    """Record `obj`'s content as a new version unless it equals the latest; returns the new version.

    `known_history` (this object's history objects, oldest first) saves a list call when a
    sweep already fetched every history object of the namespace. With `dry_run` the history
    object is sent as a server-side dry run (RBAC and admission judge it, nothing is stored) and
    the version it would have been is returned.
    """
    meta = obj.metadata
    namespace, name = meta.namespace, meta.name
    content = content_of(obj)
    for attempt in range(5):
        if attempt == 0 and known_history is not None:
            existing = known_history
        else:
            existing = _list_history_objects(apis, kind, namespace, name)
        if existing and _same_content(existing[-1], kind, content):
            return None
        version = int(existing[-1].metadata.labels[HISTORY_VERSION_LABEL]) + 1 if existing else 1
        now = datetime.now(UTC)
        history_meta = V1ObjectMeta(
            owner_references=_owned_by(kind, meta),
            name=history_object_name(kind, name, version),
            namespace=namespace,
            labels={
                HISTORY_OF_LABEL: label_value(name),
                HISTORY_KIND_LABEL: kind,
                HISTORY_VERSION_LABEL: str(version),
                "app.kubernetes.io/managed-by": "backout",
            },
            annotations={
                HISTORY_NAME_ANNOTATION: name,
                RECORDED_AT_ANNOTATION: now.isoformat(),
                CHANGED_AT_ANNOTATION: _last_write_time(meta).astimezone(UTC).isoformat(),
                SOURCE_ANNOTATIONS: json.dumps(_user_annotations(meta), sort_keys=True),
                **({DIGEST_ANNOTATION: _digest(content)} if kind == "configmap" else {}),
            },
        )
        server_dry_run = SERVER_DRY_RUN if dry_run else None
        try:
            if kind == "configmap":
                apis.core.create_namespaced_config_map(
                    namespace,
                    V1ConfigMap(
                        metadata=history_meta,
                        data=content["data"] or None,
                        binary_data=content["binaryData"] or None,
                    ),
                    dry_run=server_dry_run,
                )
            else:
                apis.core.create_namespaced_secret(
                    namespace,
                    V1Secret(
                        metadata=history_meta,
                        type=HISTORY_SECRET_TYPE,
                        data={**content["data"]} or None,
                    ),
                    dry_run=server_dry_run,
                )
        except ApiException as exc:
            if exc.status == 409:  # another recorder wrote this version first: look again
                continue
            raise
        if dry_run:
            log.debug("dry run: would record %s %s/%s version %d", kind, namespace, name, version)
        else:
            _prune(apis, kind, namespace, [*existing])
            log.info("recorded %s %s/%s version %d", kind, namespace, name, version)
        return RecordedVersion(
            kind=kind,
            namespace=namespace,
            name=name,
            version=version,
            recorded_at=now,
            changed_at=_last_write_time(meta),
            history_object=history_meta.name,
            keys=sorted({*content["data"], *content["binaryData"]}),
            annotations=_user_annotations(meta),
        )
    return None


def _owned_by(kind: ObjectKind, meta: Any) -> list[V1OwnerReference] | None:
    """The copied object as the copy's owner (not a controller; nothing blocks its deletion)."""
    if not meta.uid:
        return None
    return [
        V1OwnerReference(
            api_version="v1",
            kind="ConfigMap" if kind == "configmap" else "Secret",
            name=meta.name,
            uid=meta.uid,
            controller=False,
            block_owner_deletion=False,
        )
    ]


def _prune(apis: KubeApis, kind: ObjectKind, namespace: str, existing: list[Any]) -> None:
    keep = KEEP_VERSIONS if kind == "configmap" else KEEP_SECRET_VERSIONS
    for old in existing[: max(0, len(existing) + 1 - keep)]:
        try:
            if kind == "configmap":
                apis.core.delete_namespaced_config_map(old.metadata.name, namespace)
            else:
                apis.core.delete_namespaced_secret(old.metadata.name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise


class Sweep(NamedTuple):
    """One recording sweep: the versions it recorded, and every history object of each kind as it
    listed them before recording (current when it recorded nothing)."""

    recorded: list[RecordedVersion]
    history: dict[ObjectKind, list[Any]]


def record_now(apis: KubeApis, namespace: str | None, dry_run: DryRun = NO_DRY_RUN) -> list[RecordedVersion]:
    """One sweep: record every tracked ConfigMap and Secret in `namespace` (None = all); where
    `dry_run` applies the history writes are server-side dry runs."""
    return sweep(apis, namespace, dry_run).recorded


def sweep(
    apis: KubeApis, namespace: str | None, dry_run: DryRun = NO_DRY_RUN, reads: ClusterReads | None = None
) -> Sweep:
    """record_now, with the history objects it listed on the way; `reads` shares its list of a
    namespace's ConfigMaps (the action log is among them)."""
    recorded: list[RecordedVersion] = []
    # One list of each kind, not one of the objects to record and one of their history: the history
    # objects are among the kind's objects, told apart by their labels, so both lists together
    # held the same objects at twice the calls.
    config_maps: list[Any]
    secrets: list[Any]
    if namespace is None:
        every_config_map, every_secret = at_once(
            apis.core.list_config_map_for_all_namespaces, apis.core.list_secret_for_all_namespaces
        )
        config_maps, secrets = every_config_map.items, every_secret.items
    else:
        shared = reads if reads is not None else ClusterReads(apis)
        config_maps, secrets = at_once(
            partial(shared.config_maps, namespace), partial(shared.secrets, namespace)
        )
    history: dict[ObjectKind, list[Any]] = {}
    kinds: tuple[tuple[ObjectKind, list[Any]], ...] = (("configmap", config_maps), ("secret", secrets))
    for kind, items in kinds:
        index = _history_index(kind, items)
        for obj in items:
            if is_tracked(kind, obj):
                known = index.get((obj.metadata.namespace, obj.metadata.name), [])
                version = record_object(
                    apis,
                    kind,
                    obj,
                    known_history=known,
                    dry_run=dry_run.applies(obj.metadata.namespace),
                )
                if version is not None:
                    recorded.append(version)
        history[kind] = [item for versions in index.values() for item in versions]
    return Sweep(recorded, history)


def _history_index(kind: ObjectKind, items: list[Any]) -> dict[tuple[str, str], list[Any]]:
    """The history objects of `kind` among `items`, by (namespace, owner name), oldest version first."""
    index: dict[tuple[str, str], list[Any]] = {}
    for item in items:
        labels = item.metadata.labels or {}
        owner = (item.metadata.annotations or {}).get(HISTORY_NAME_ANNOTATION)
        if labels.get(HISTORY_KIND_LABEL) == kind and owner:
            index.setdefault((item.metadata.namespace, owner), []).append(item)
    for versions in index.values():
        versions.sort(key=lambda item: int(item.metadata.labels[HISTORY_VERSION_LABEL]))
    return index


def _watch_kind(
    apis: KubeApis, kind: ObjectKind, namespace: str | None, stop: StopFlag, window_s: int, dry_run: DryRun
) -> None:
    if kind == "configmap":
        func = (
            apis.core.list_config_map_for_all_namespaces
            if namespace is None
            else apis.core.list_namespaced_config_map
        )
    else:
        func = (
            apis.core.list_secret_for_all_namespaces
            if namespace is None
            else apis.core.list_namespaced_secret
        )
    args = () if namespace is None else (namespace,)
    watcher = watch.Watch()
    selector = f"!{HISTORY_OF_LABEL}"
    try:
        # Start from "now" (the sweep just recorded the current state) instead of replaying
        # every object as ADDED.
        since = func(*args, label_selector=selector, limit=1).metadata.resource_version
        for event in watcher.stream(
            func, *args, label_selector=selector, timeout_seconds=window_s, resource_version=since
        ):
            if stop.is_set():
                break
            if event["type"] in ("ADDED", "MODIFIED") and is_tracked(kind, event["object"]):
                changed = event["object"]
                record_object(apis, kind, changed, dry_run=dry_run.applies(changed.metadata.namespace))
    except Exception as exc:  # the next window sweeps again, so a dropped watch loses nothing
        if stop.is_set():
            # Shutdown closes the connection under the watch: expected, and nothing is lost.
            log.debug("history watch on %s %s stopped: %s", kind, namespace or "*", type(exc).__name__)
        else:
            log.warning(
                "history watch on %s %s ended: %s: %s", kind, namespace or "*", type(exc).__name__, exc
            )
    finally:
        watcher.stop()


def run_history_recorder(settings: Settings, stop: StopFlag, window_s: int = 60) -> None:
    """Blocking loop for the worker process (run it in a thread); returns soon after `stop` is set.

    Sweeps, then watches ConfigMaps and Secrets in the allowed namespaces (all when the
    allow list is empty) for `window_s` at a time, sweeping again between windows so
    nothing written while a watch reconnects is missed.
    """
    # Only where backout may act: its allow list, every namespace only for "*" (never by default).
    namespaces: list[str | None] = [None] if settings.every_namespace else list(settings.allowed_namespaces)
    if not namespaces:
        log.warning("history recorder not started: the namespace allow list is empty")
        return
    dry_run = DryRun.of(settings)
    try:
        apis = apis_from_settings(settings)
    except ApplicationError as exc:  # a worker without a cluster still runs; it just records nothing
        log.warning("history recorder not started: %s", exc.message)
        return
    try:
        while not stop.is_set():
            try:
                for namespace in namespaces:
                    record_now(apis, namespace, dry_run)
            except Exception as exc:  # keep recording through apiserver restarts
                log.warning("history recorder sweep: %s: %s; retrying", type(exc).__name__, exc)
                _sleep_unless_stopped(stop, 2.0)
                continue
            threads = [
                threading.Thread(
                    target=_watch_kind, args=(apis, kind, ns, stop, window_s, dry_run), daemon=True
                )
                for ns in namespaces
                for kind in ("configmap", "secret")
            ]
            for thread in threads:
                thread.start()
            while any(thread.is_alive() for thread in threads) and not stop.is_set():
                time.sleep(0.2)
    finally:
        apis.close()


def _sleep_unless_stopped(stop: StopFlag, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.1)
