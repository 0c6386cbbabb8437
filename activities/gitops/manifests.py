"""Find an object's manifest in a Git repository and the commit that introduced its content.

The files a reconciler applies from a folder: with a `kustomization.yaml` there, the
`resources` it lists (followed into sub-folders and sibling bases); without one, every
YAML file below the folder, as Flux's kustomize-controller generates it. Transformers
(name prefixes, patches, generators with hash suffixes) are not evaluated: an object they
rename is reported as not found rather than guessed.
"""

from __future__ import annotations

import difflib
import posixpath
from typing import Any

import yaml

from activities.gitops.git import GitRepository, truncate
from incidents.gitops import CulpritCommit, GitSource, ObjectRef

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
YAML_SUFFIXES = (".yaml", ".yml")


class ManifestNotFound(LookupError):
    """The object is declared in no file the reconciler applies from its path."""


def normalize_path(path: str | None) -> str:
    """`./apps/chat/` -> `apps/chat`; `./` and None -> `` (the repository root)."""
    cleaned = posixpath.normpath((path or ".").strip().lstrip("/"))
    return "" if cleaned in (".", "") else cleaned


def _load_documents(text: str) -> list[dict[str, Any]]:
    try:
        return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
    except yaml.YAMLError:
        return []


def applied_files(repo: GitRepository, revision: str, folder: str, seen: set[str] | None = None) -> list[str]:
    """The manifest files applied from `folder` at `revision` (see the module docstring)."""
    seen = set() if seen is None else seen
    if folder in seen:
        return []
    seen.add(folder)
    files = repo.list_files(revision, folder)
    prefix = f"{folder}/" if folder else ""
    direct = {path[len(prefix) :]: path for path in files if "/" not in path[len(prefix) :]}
    kustomization = next((direct[name] for name in KUSTOMIZATION_FILES if name in direct), None)
    if kustomization is None:
        return [
            path
            for path in files
            if path.endswith(YAML_SUFFIXES) and posixpath.basename(path) not in KUSTOMIZATION_FILES
        ]
    text = repo.show_file(revision, kustomization) or ""
    documents = _load_documents(text)
    resources = documents[0].get("resources", []) if documents else []
    result: list[str] = []
    for entry in resources if isinstance(resources, list) else []:
        if not isinstance(entry, str) or "://" in entry:
            continue
        target = normalize_path(posixpath.join(folder, entry))
        if target.endswith(YAML_SUFFIXES):
            result.append(target)
        else:
            result.extend(applied_files(repo, revision, target, seen))
    return result


def _matches(doc: dict[str, Any], ref: ObjectRef, default_namespace: str | None) -> bool:
    metadata = doc.get("metadata") or {}
    if doc.get("kind") != ref.kind or metadata.get("name") != ref.name:
        return False
    group = str(doc.get("apiVersion", "")).rpartition("/")[0]
    if group != ref.api_version.rpartition("/")[0]:
        return False
    namespace = metadata.get("namespace") or default_namespace
    return ref.namespace is None or namespace is None or namespace == ref.namespace


def find_manifest(
    repo: GitRepository, revision: str, source: GitSource, ref: ObjectRef
) -> tuple[str, dict[str, Any]] | None:
    """(file, document) declaring `ref` among the files applied at `revision`, or None."""
    for path in applied_files(repo, revision, normalize_path(source.path)):
        for doc in _load_documents(repo.show_file(revision, path) or ""):
            if _matches(doc, ref, source.target_namespace):
                return path, doc
    return None


def _canonical(doc: dict[str, Any] | None) -> str:
    return "" if doc is None else yaml.safe_dump(doc, sort_keys=True, default_flow_style=False)


def object_diff(before: dict[str, Any] | None, after: dict[str, Any] | None, path: str) -> str:
    lines = difflib.unified_diff(
        _canonical(before).splitlines(keepends=True),
        _canonical(after).splitlines(keepends=True),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    )
    return truncate("".join(lines))


def is_subset(desired: Any, live: Any) -> bool:
    """Every field of `desired` has the same value in `live` (which may carry defaults and status)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            key in live and is_subset(value, live[key]) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return isinstance(live, list) and len(desired) == len(live) and all(map(is_subset, desired, live))
    return bool(desired == live or str(desired) == str(live))


def content_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The part of a manifest a rollback is about: everything but identity and bookkeeping."""
    return {
        key: value for key, value in doc.items() if key not in ("apiVersion", "kind", "metadata", "status")
    }


def find_culprit(
    repo: GitRepository, source: GitSource, ref: ObjectRef, live: dict[str, Any] | None = None
) -> CulpritCommit:
    """The newest commit at `source.revision` that changed the object's manifest.

    Walks the commits that touched the source folder, newest first, and compares the
    object's document in each with its first parent's: the first that differs introduced
    the content the reconciler applies.
    """
    if not source.revision:
        raise ManifestNotFound(f"{ref.describe()}: the reconciler reports no applied revision yet")
    revision = source.revision
    found = find_manifest(repo, revision, source, ref)
    if found is None:
        raise ManifestNotFound(
            f"{ref.describe()} is declared in no manifest under {source.path or '/'} at {revision[:12]}"
        )
    manifest_path, current = found
    canonical_current = _canonical(current)
    folders = sorted(
        {
            normalize_path(source.path),
            *(posixpath.dirname(path) for path in applied_files(repo, revision, normalize_path(source.path))),
        }
    )
    for sha in repo.log(revision, folders):
        here = find_manifest(repo, sha, source, ref)
        if here is None or _canonical(here[1]) != canonical_current:
            # Older than the current content: the commit after it (already passed) introduced it.
            break
        commit = repo.commit(sha)
        parent_found = find_manifest(repo, commit.parents[0], source, ref) if commit.parents else None
        before = parent_found[1] if parent_found else None
        if _canonical(before) != canonical_current:
            matches = is_subset(content_fields(current), live) if live is not None else None
            return CulpritCommit(
                object=ref,
                source=source,
                commit=commit,
                manifest_path=manifest_path,
                object_diff=object_diff(before, current, manifest_path),
                matches_live=matches,
            )
    raise ManifestNotFound(f"{ref.describe()}: no commit under {source.path or '/'} introduced its content")
