"""Temporal activities for Kubernetes: remediate and verify (KubeActivities), and the change listing
and remediation the CLI runs with the same code.

Kubernetes calls are blocking, so each runs in a thread. The client comes from the settings the
worker (or the CLI) was built with: one pooled client per kubeconfig (client.shared_apis).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, Field, field_validator
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.gitops.changes import ledger_annotator
from activities.kube import history, ledger, remediation, verify
from activities.kube.client import KubeApis, classify, shared_apis
from activities.kube.dry_run import DryRun
from config import Settings
from incidents.bundle import Change
from incidents.remediation import RemediationRequest, RemediationResult, VerificationResult, VerifyRequest

T = TypeVar("T")


class ListChangesRequest(BaseModel):
    """Namespaces to read (empty: the allow list, or every namespace when that is empty)."""

    namespaces: list[str] = Field(default_factory=list)
    since: datetime
    record_first: bool = True

    @field_validator("since")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("since must carry a UTC offset")
        return value


def resolve_namespaces(apis: KubeApis, settings: Settings, requested: list[str]) -> list[str]:
    """The namespaces to read: those requested (each inside the allow list), else the allow list
    (every namespace but the system ones for "*"); an empty allow list allows none."""
    if requested:
        outside = [ns for ns in requested if not settings.namespace_allowed(ns)]
        if outside:
            raise ApplicationError(
                f"namespaces outside the allow list: {', '.join(outside)}",
                type="NamespaceNotAllowed",
                non_retryable=True,
            )
        return requested
    if not settings.allowed_namespaces:
        raise ApplicationError(
            "the namespace allow list is empty: set BACKOUT_ALLOWED_NAMESPACES",
            type="NamespaceNotAllowed",
            non_retryable=True,
        )
    if not settings.every_namespace:
        return list(settings.allowed_namespaces)
    return sorted(
        ns.metadata.name
        for ns in apis.core.list_namespace().items
        if ns.metadata.name not in history.SKIP_NAMESPACES
    )


def list_changes(settings: Settings, request: ListChangesRequest) -> list[Change]:
    """Deployment, ConfigMap and Secret changes since `request.since` (what `backout changes` lists)."""

    def work(apis: KubeApis) -> list[Change]:
        namespaces = resolve_namespaces(apis, settings, request.namespaces)
        return ledger.list_changes(
            apis,
            namespaces,
            request.since,
            record_first=request.record_first,
            dry_run=DryRun.of(settings),
            annotate=ledger_annotator(settings),
        )

    return _with_apis(settings, "listing cluster changes", work)


def remediate_now(settings: Settings, request: RemediationRequest) -> RemediationResult:
    """One remediation, guarded and idempotent (what the activity and `backout rollback` run)."""
    doing = f"{request.operation} {request.target_type}/{request.namespace}/{request.name}"
    return _with_apis(settings, doing, lambda apis: remediation.remediate(apis, settings, request))


def _with_apis(settings: Settings, doing: str, work: Callable[[KubeApis], T]) -> T:
    try:
        return work(shared_apis(settings))
    except Exception as exc:
        raise classify(exc, doing) from exc


class KubeActivities:
    """Remediation and rollout verification against the cluster the settings name."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name="remediate")
    async def remediate(self, request: RemediationRequest) -> RemediationResult:
        """Roll back / restore / pause / scale; idempotent under retries, refused outcomes are Failed."""
        return await asyncio.to_thread(remediate_now, self.settings, request)

    @activity.defn(name="verify_rollout")
    async def verify_rollout(self, request: VerifyRequest) -> VerificationResult:
        """Wait for the rollout (heartbeating); ProgressDeadlineExceeded is Failed, timeout Inconclusive."""
        doing = f"verifying {request.target_type}/{request.namespace}/{request.name}"
        if request.target_type != "deployment":
            return await asyncio.to_thread(
                _with_apis, self.settings, doing, lambda apis: verify.verify(apis, request)
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_s
        try:
            apis = shared_apis(self.settings)
            while True:
                deployment = await asyncio.to_thread(
                    apis.apps.read_namespaced_deployment, request.name, request.namespace
                )
                state, message, details = verify.rollout_state(deployment)
                if state == "done":
                    return VerificationResult(outcome="Successful", message=message, details=details)
                if state == "failed":
                    return VerificationResult(outcome="Failed", message=message, details=details)
                if loop.time() >= deadline:
                    pods = await asyncio.to_thread(verify.pod_diagnosis, apis, deployment)
                    return verify.timed_out(request, message, details, pods)
                activity.heartbeat(message)
                await asyncio.sleep(verify.POLL_INTERVAL_S)
        except Exception as exc:
            raise classify(exc, doing) from exc
