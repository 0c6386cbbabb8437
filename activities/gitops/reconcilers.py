"""Suspend and resume exactly one reconciler, and read what it last applied.

Flux: `spec.suspend: true` on the Kustomization or HelmRelease (what `flux suspend` does);
resuming sets it back to false and asks for an immediate reconcile with the
`reconcile.fluxcd.io/requestedAt` annotation (what `flux reconcile` does), on the source too.
Argo CD: auto-sync is off when `spec.syncPolicy.automated` is absent (what
`argocd app set --sync-policy none` does); the original block is remembered and restored,
and `argocd.argoproj.io/refresh` asks for a refresh.

The suspended object carries `backout.dev/suspended-by: <incident>`: a human sees why it is
suspended, and only that incident resumes it. A reconciler that was suspended before backout
came is left suspended. With `dry_run` every patch is a server-side dry run (`dryRun=All`):
the API server authorises and validates it, nothing is stored.

Suspending takes effect when the controller next handles the object, and a reconcile already
running finishes first: it may still apply the bad version after the spec says suspend. So
`settle` waits until the controller has handled the suspended object: Flux's controllers handle
one object at a time and write the `reconcile.fluxcd.io/requestedAt` value they handled into
`status.lastHandledReconcileAt`, also for a suspended object, so the suspension carries a fresh
value and is settled when the status echoes it; Argo CD is settled when no sync operation is
pending or running.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from activities.gitops.ownership import GIT_REPOSITORY, RESOURCES, CustomResource, revision_sha
from incidents.gitops import (
    ReconcilerRef,
    ReconcilerStatus,
    ResumeResult,
    SuspensionRecord,
    SuspensionResult,
)

SUSPENDED_BY = "backout.dev/suspended-by"
SUSPENDED_AT = "backout.dev/suspended-at"
ORIGINAL_AUTOMATED = "backout.dev/original-sync-automated"
FLUX_REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
ARGOCD_REFRESH = "argocd.argoproj.io/refresh"
SERVER_DRY_RUN = "All"


class ReconcilerError(RuntimeError):
    """The reconciler object cannot be read or written; the message says which and why."""


def _escape(key: str) -> str:
    """A JSON Pointer segment (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


class Reconcilers:
    """Suspend, resume and inspect Flux Kustomizations/HelmReleases and Argo CD Applications."""

    def __init__(self, custom_api: Any, dry_run: bool = False) -> None:
        self.custom = custom_api
        self.dry_run = dry_run

    # --- raw access -------------------------------------------------------------------------

    def _resource(self, ref: ReconcilerRef) -> CustomResource:
        return RESOURCES[ref.kind]

    def read(self, ref: ReconcilerRef) -> dict[str, Any]:
        resource = self._resource(ref)
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                resource.group, resource.version, ref.namespace, resource.plural, ref.name
            )
            return found
        except Exception as exc:
            raise ReconcilerError(f"cannot read {ref.describe()}: {_status(exc)}") from None

    def _patch(self, resource: CustomResource, namespace: str, name: str, body: Any) -> dict[str, Any]:
        """A dict body goes as a JSON merge patch (RFC 7386), a list as a JSON Patch (RFC 6902)."""
        content_type = (
            "application/json-patch+json" if isinstance(body, list) else "application/merge-patch+json"
        )
        try:
            patched: dict[str, Any] = self.custom.patch_namespaced_custom_object(
                resource.group,
                resource.version,
                namespace,
                resource.plural,
                name,
                body,
                _content_type=content_type,
                **({"dry_run": SERVER_DRY_RUN} if self.dry_run else {}),
            )
            return patched
        except Exception as exc:
            raise ReconcilerError(
                f"cannot patch {resource.plural} {namespace}/{name}: {_status(exc)}"
            ) from None

    # --- suspend ----------------------------------------------------------------------------

    def suspend(self, ref: ReconcilerRef, incident_id: str) -> SuspensionResult:
        current = self.read(ref)
        annotations = (current.get("metadata") or {}).get("annotations") or {}
        holder = annotations.get(SUSPENDED_BY)
        now = datetime.now(UTC)
        if holder == incident_id:
            return SuspensionResult(
                outcome="Successful",
                message=f"{ref.describe()} already suspended by this incident",
                record=self._record_from(ref, incident_id, annotations, already=False),
            )
        if holder:
            return SuspensionResult(
                outcome="Failed",
                message=f"{ref.describe()} is suspended by incident {holder}; not taking it over",
            )
        stamp = {SUSPENDED_BY: incident_id, SUSPENDED_AT: now.isoformat()}
        if ref.tool == "flux":
            stamp[FLUX_REQUESTED_AT] = f"backout-suspend-{incident_id}-{now.timestamp():.6f}"
            already = bool((current.get("spec") or {}).get("suspend"))
            if already:
                return SuspensionResult(
                    outcome="Successful",
                    message=f"{ref.describe()} was already suspended (not by backout); it will stay suspended",
                    record=SuspensionRecord(
                        reconciler=ref, incident_id=incident_id, suspended_at=now, already_suspended=True
                    ),
                )
            self._patch(
                self._resource(ref),
                ref.namespace,
                ref.name,
                {"metadata": {"annotations": stamp}, "spec": {"suspend": True}},
            )
            return SuspensionResult(
                outcome="Successful",
                message=f"suspended {ref.describe()} (spec.suspend: true)",
                record=SuspensionRecord(
                    reconciler=ref, incident_id=incident_id, suspended_at=now, already_suspended=False
                ),
            )
        automated = ((current.get("spec") or {}).get("syncPolicy") or {}).get("automated")
        if automated is None or automated.get("enabled") is False:
            return SuspensionResult(
                outcome="Successful",
                message=f"{ref.describe()} has no automated sync; nothing re-applies it",
                record=SuspensionRecord(
                    reconciler=ref, incident_id=incident_id, suspended_at=now, already_suspended=True
                ),
            )
        stamp[ORIGINAL_AUTOMATED] = json.dumps(automated, sort_keys=True)
        operations: list[dict[str, Any]] = [
            # `test` makes the removal conditional on what was read: a concurrent edit fails the patch.
            {"op": "test", "path": "/spec/syncPolicy/automated", "value": automated},
            {"op": "remove", "path": "/spec/syncPolicy/automated"},
        ]
        if not annotations:
            operations.append({"op": "add", "path": "/metadata/annotations", "value": stamp})
        else:
            operations += [
                {"op": "add", "path": f"/metadata/annotations/{_escape(key)}", "value": value}
                for key, value in stamp.items()
            ]
        self._patch(self._resource(ref), ref.namespace, ref.name, operations)
        return SuspensionResult(
            outcome="Successful",
            message=f"turned off automated sync of {ref.describe()} (was {json.dumps(automated, sort_keys=True)})",
            record=SuspensionRecord(
                reconciler=ref,
                incident_id=incident_id,
                suspended_at=now,
                already_suspended=False,
                original_automated=automated,
            ),
        )

    def _record_from(
        self, ref: ReconcilerRef, incident_id: str, annotations: dict[str, str], already: bool
    ) -> SuspensionRecord:
        original = annotations.get(ORIGINAL_AUTOMATED)
        at = annotations.get(SUSPENDED_AT)
        return SuspensionRecord(
            reconciler=ref,
            incident_id=incident_id,
            suspended_at=datetime.fromisoformat(at) if at else datetime.now(UTC),
            already_suspended=already,
            original_automated=json.loads(original) if original else None,
        )

    def settle(self, ref: ReconcilerRef, timeout_s: float, poll_s: float = 0.5) -> str:
        """Wait until the controller has handled the suspension (see the module docstring): "" when it
        has, else what was seen when `timeout_s` ran out (a controller that is down applies nothing)."""
        deadline = time.monotonic() + timeout_s
        while True:
            current = self.read(ref)
            annotations = (current.get("metadata") or {}).get("annotations") or {}
            status = current.get("status") or {}
            if ref.tool == "flux":
                wanted = annotations.get(FLUX_REQUESTED_AT)
                handled = status.get("lastHandledReconcileAt")
                if not wanted or handled == wanted:
                    return ""
                seen = f"the controller has not handled it yet (last handled {handled or 'nothing'})"
            else:
                phase = (status.get("operationState") or {}).get("phase")
                if current.get("operation") is None and phase not in ("Running", "Terminating"):
                    return ""
                seen = f"a sync operation is still {'pending' if phase is None else phase.lower()}"
            if time.monotonic() >= deadline:
                return seen
            time.sleep(poll_s)

    # --- resume -----------------------------------------------------------------------------

    def resume(self, record: SuspensionRecord) -> ResumeResult:
        ref = record.reconciler
        if record.already_suspended:
            return ResumeResult(
                outcome="Successful", message=f"{ref.describe()} was suspended before backout; left so"
            )
        current = self.read(ref)
        annotations = (current.get("metadata") or {}).get("annotations") or {}
        holder = annotations.get(SUSPENDED_BY)
        if holder != record.incident_id:
            return ResumeResult(
                outcome="Failed",
                message=f"{ref.describe()} is no longer suspended by incident {record.incident_id} "
                f"(suspended-by: {holder or 'nobody'}); not touching it",
            )
        now = datetime.now(UTC).isoformat()
        if ref.tool == "flux":
            cleared: dict[str, Any] = {SUSPENDED_BY: None, SUSPENDED_AT: None, FLUX_REQUESTED_AT: now}
            self._patch(
                self._resource(ref),
                ref.namespace,
                ref.name,
                {"metadata": {"annotations": cleared}, "spec": {"suspend": False}},
            )
            self.request_source_refresh(ref, now)
            return ResumeResult(
                outcome="Successful",
                message=f"resumed {ref.describe()} and requested a reconcile",
                resumed=True,
            )
        original = record.original_automated
        if original is None and annotations.get(ORIGINAL_AUTOMATED):
            original = json.loads(annotations[ORIGINAL_AUTOMATED])
        operations: list[dict[str, Any]] = [
            {"op": "remove", "path": f"/metadata/annotations/{_escape(key)}"}
            for key in (SUSPENDED_BY, SUSPENDED_AT, ORIGINAL_AUTOMATED)
            if key in annotations
        ]
        operations.append(
            {"op": "add", "path": f"/metadata/annotations/{_escape(ARGOCD_REFRESH)}", "value": "normal"}
        )
        if not (current.get("spec") or {}).get("syncPolicy"):
            operations.append({"op": "add", "path": "/spec/syncPolicy", "value": {}})
        operations.append({"op": "add", "path": "/spec/syncPolicy/automated", "value": original or {}})
        self._patch(self._resource(ref), ref.namespace, ref.name, operations)
        return ResumeResult(
            outcome="Successful",
            message=f"restored automated sync of {ref.describe()} ({json.dumps(original or {}, sort_keys=True)}) and asked for a refresh",
            resumed=True,
        )

    def request_source_refresh(self, ref: ReconcilerRef, stamp: str | None = None) -> None:
        """Flux: ask the GitRepository to fetch now, so the reconcile sees the newest commit."""
        if ref.tool != "flux":
            return
        obj = self.read(ref)
        spec = obj.get("spec") or {}
        source_ref = (
            spec.get("sourceRef") or ((spec.get("chart") or {}).get("spec") or {}).get("sourceRef") or {}
        )
        if source_ref.get("kind") != "GitRepository":
            return
        body = {"metadata": {"annotations": {FLUX_REQUESTED_AT: stamp or datetime.now(UTC).isoformat()}}}
        self._patch(
            GIT_REPOSITORY, source_ref.get("namespace") or ref.namespace, str(source_ref["name"]), body
        )

    # --- status -----------------------------------------------------------------------------

    def status(self, ref: ReconcilerRef) -> ReconcilerStatus:
        obj = self.read(ref)
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        if ref.tool == "flux":
            ready = _condition(obj, "Ready")
            generation = (obj.get("metadata") or {}).get("generation")
            observed = status.get("observedGeneration")
            current = generation is None or observed is None or observed >= generation
            return ReconcilerStatus(
                reconciler=ref,
                suspended=bool(spec.get("suspend")),
                ready=(ready or {}).get("status") == "True" and current if ready else None,
                applied_revision=revision_sha(status.get("lastAppliedRevision")),
                message=str((ready or {}).get("message", "")),
            )
        automated = (spec.get("syncPolicy") or {}).get("automated")
        sync = status.get("sync") or {}
        health = (status.get("health") or {}).get("status")
        operation = status.get("operationState") or {}
        return ReconcilerStatus(
            reconciler=ref,
            suspended=automated is None or automated.get("enabled") is False,
            ready=sync.get("status") == "Synced" if sync.get("status") else None,
            applied_revision=sync.get("revision"),
            sync_status=sync.get("status"),
            message=" ".join(
                part
                for part in (f"health {health}" if health else "", str(operation.get("message", "")))
                if part
            ),
        )


def _status(exc: Exception) -> str:
    """HTTP status and the apiserver's own message (which names the field or permission)."""
    status = getattr(exc, "status", None)
    if not status:
        return type(exc).__name__
    try:
        message = json.loads(getattr(exc, "body", None) or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = ""
    return f"HTTP {status}: {message or getattr(exc, 'reason', '')}".strip()
