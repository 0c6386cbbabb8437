"""Dry run: where every Kubernetes write backout makes is a server-side dry run.

`kube_dry_run` covers every namespace, `kube_dry_run_namespaces` only those listed. A dry-run write
is still sent, with `dryRun=All`: the API server authenticates it, RBAC authorizes it and admission
(webhooks, quotas, validation) judges it, then nothing is persisted. So a dry run proves that the
write would have been allowed, and its answer is the object as it would have been (the diff).

Every writer asks this policy: remediation (workflow and `backout rollback`), the ConfigMap/Secret
history recorder and the GitOps activities (reconciler suspend/resume/refresh, reverts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from config import Settings

SERVER_DRY_RUN = "All"


@dataclass(frozen=True)
class DryRun:
    """Which namespaces get server-side dry runs instead of writes."""

    everywhere: bool = False
    namespaces: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, settings: Settings) -> DryRun:
        return cls(everywhere=settings.kube_dry_run, namespaces=frozenset(settings.kube_dry_run_namespaces))

    def applies(self, namespace: str | None) -> bool:
        """Whether a write in `namespace` (None: a cluster-scoped object) must only be dry-run."""
        return self.everywhere or (namespace is not None and namespace in self.namespaces)

    def param(self, namespace: str | None) -> str | None:
        """The API server's `dry_run` argument for a write in `namespace`: "All", or None to persist."""
        return SERVER_DRY_RUN if self.applies(namespace) else None

    def describe(self, namespace: str | None) -> str:
        """Why a write in `namespace` was a dry run, for the timeline and the report."""
        if self.everywhere:
            return "dry run (kube_dry_run): nothing was changed"
        return f"dry run (namespace {namespace} is in kube_dry_run_namespaces): nothing was changed"


NO_DRY_RUN = DryRun()
