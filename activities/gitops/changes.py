"""The change ledger's GitOps side: which cluster changes Flux or Argo CD applied, from which Git
source, and which commit introduced them.

For every object the ledger lists changes of, the object's own labels and annotations name its
reconciler (ownership.py); the reconciler names the repository, branch, path and the revision it
applied. The commit that introduced the object's content at that revision (manifests.py) is put
on the object's newest change not made by backout: that is the change the reconciler applied
from it. Older changes of the object keep the Git source without a commit. Anything that cannot
be read (a repository backout cannot reach, an owner it may not read) leaves a note on the
change instead of failing the listing.
"""

from __future__ import annotations

import logging
from typing import Any

from activities.gitops.activities import FindCulpritRequest, GitOpsActivities
from activities.gitops.ownership import OWNERSHIP_METADATA
from activities.kube.ledger import ChangeAnnotator
from activities.kube.reads import ClusterReads
from config import Settings
from incidents.bundle import Change, GitCommitRef, GitOrigin
from incidents.gitops import CulpritCommit, ObjectRef, Ownership

log = logging.getLogger(__name__)
# The ledger's author of backout's own writes (rollbacks, restores): never what a reconciler applied.
BACKOUT_AUTHOR = "backout"
# The Kubernetes object each undo handle type names.
HANDLE_OBJECTS: dict[str, tuple[str, str]] = {
    "deployment": ("apps/v1", "Deployment"),
    "configmap": ("v1", "ConfigMap"),
    "secret": ("v1", "Secret"),
}


def object_of(change: Change) -> ObjectRef | None:
    handle = change.rollback
    if handle is None or handle.type not in HANDLE_OBJECTS or not handle.name:
        return None
    namespace = handle.namespace or change.namespace
    if not namespace:
        return None
    api_version, kind = HANDLE_OBJECTS[handle.type]
    return ObjectRef(api_version=api_version, kind=kind, name=handle.name, namespace=namespace)


def commit_ref(culprit: CulpritCommit) -> GitCommitRef:
    commit = culprit.commit
    return GitCommitRef(
        sha=commit.sha,
        author=commit.author_name,
        author_email=commit.author_email,
        committed_at=commit.committed_at,
        message=commit.subject,
        files=[file.path for file in commit.files],
    )


def origin_of(
    ownership: Ownership, culprit: CulpritCommit | None = None, note: str | None = None
) -> GitOrigin | None:
    source = ownership.source
    if source is None:
        return None
    return GitOrigin(
        tool=ownership.reconciler.tool,
        reconciler=ownership.reconciler.describe(),
        repository=source.repo_url,
        branch=source.branch,
        path=source.path,
        revision=culprit.source.revision if culprit is not None else source.revision,
        manifest=culprit.manifest_path if culprit is not None else None,
        commit=commit_ref(culprit) if culprit is not None else None,
        note=note,
    )


class GitOpsLedger:
    """Puts the Git origin on the cluster changes of GitOps-managed objects (a ledger annotator)."""

    def __init__(self, gitops: GitOpsActivities) -> None:
        self.gitops = gitops

    def _origin(self, reads: ClusterReads, ref: ObjectRef) -> tuple[GitOrigin | None, bool]:
        """(origin, whether it names the commit); (None, False) when no reconciler owns the object."""
        try:
            owned = self.gitops.owner_of(ref, self._live(reads, ref))
        except Exception as exc:  # an owner backout may not read must not hide the other changes
            log.warning("GitOps owner of %s: %s", ref.describe(), self.gitops.redactor(str(exc)))
            return None, False
        ownership = owned.ownership
        if ownership is None:
            return None, False
        if ownership.source is None:
            reconciler = ownership.reconciler
            return (
                GitOrigin(
                    tool=reconciler.tool,
                    reconciler=reconciler.describe(),
                    repository="",
                    note=ownership.unresolved_reason or "no Git source",
                ),
                False,
            )
        try:
            found = self.gitops.find_culprit_sync(FindCulpritRequest(ownership=ownership))
        except Exception as exc:
            note = f"commit not read: {self.gitops.redactor(f'{type(exc).__name__}: {exc}')}"
            return origin_of(ownership, note=note), False
        if found.culprit is None:
            return origin_of(ownership, note=found.message), False
        return origin_of(ownership, found.culprit), True

    def _live(self, reads: ClusterReads, ref: ObjectRef) -> dict[str, Any] | None:
        """The object as the ledger listed it, else as read now (None when it does not exist)."""
        listed = reads.listed_deployment(ref.namespace or "", ref.name) if ref.kind == "Deployment" else None
        if listed is None:
            return self.gitops.read_live(ref)
        # Only what ownership reads (plain strings and string maps): converting the whole object
        # (managed fields, template, status) to the API's JSON was most of the annotation's CPU.
        metadata = {field: getattr(listed.metadata, field) for field in OWNERSHIP_METADATA}
        return {"apiVersion": ref.api_version, "kind": ref.kind, "metadata": metadata}

    def __call__(self, reads: ClusterReads, changes: list[Change]) -> list[Change]:
        """The same changes, those of GitOps-managed objects with their origin (oldest first kept)."""
        by_object: dict[tuple[str, str, str], list[int]] = {}
        refs: dict[tuple[str, str, str], ObjectRef] = {}
        for index, change in enumerate(changes):
            ref = object_of(change)
            if ref is None or not change.id.startswith("k8s:"):
                continue
            key = (ref.kind, ref.namespace or "", ref.name)
            refs[key] = ref
            by_object.setdefault(key, []).append(index)
        annotated = list(changes)
        for key, indexes in by_object.items():
            origin, with_commit = self._origin(reads, refs[key])
            if origin is None:
                continue
            # The reconciler applied the commit's content in the object's newest change not by backout.
            applied = next(
                (i for i in sorted(indexes, key=lambda i: changes[i].started_at, reverse=True)
                 if changes[i].author != BACKOUT_AUTHOR),
                None,
            )  # fmt: skip
            without_commit = origin.model_copy(update={"commit": None, "manifest": None})
            for index in indexes:
                change = changes[index]
                update: dict[str, Any] = {
                    "gitops": origin if with_commit and index == applied else without_commit
                }
                if with_commit and index == applied and origin.commit is not None and not change.author:
                    update["author"] = origin.commit.author
                annotated[index] = change.model_copy(update=update)
        return annotated


def ledger_annotator(settings: Settings) -> ChangeAnnotator | None:
    """The GitOps annotator for the ledger, unless GitOps is turned off in the settings."""
    if not settings.gitops.enabled:
        return None
    return GitOpsLedger(GitOpsActivities.for_settings(settings))
