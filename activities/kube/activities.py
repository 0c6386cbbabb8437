"""Temporal activities for Kubernetes: remediate and verify (and the change listing the CLI uses).

Kubernetes calls are blocking, so each activity runs its work in a thread; the
client is built per call from `worker.settings.current_settings()` (settings.kubeconfig
or $KUBECONFIG), so no worker-level state is needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, Field, field_validator
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.kube import history, ledger, remediation, verify
from activities.kube.client import KubeApis, classify, shared_apis
from incidents.bundle import Change
from incidents.remediation import RemediationRequest, RemediationResult, VerificationResult, VerifyRequest
from worker.settings import Settings, SettingsError, current_settings

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


def _settings() -> Settings:
    try:
        return current_settings()
    except SettingsError as exc:
        raise ApplicationError(f"settings: {exc}", type="SettingsError", non_retryable=True) from exc


def _with_apis(doing: str, work: Callable[[KubeApis, Settings], T]) -> T:
    settings = _settings()
    try:
        return work(shared_apis(settings), settings)
    except Exception as exc:
        raise classify(exc, doing) from exc


def resolve_namespaces(apis: KubeApis, settings: Settings, requested: list[str]) -> list[str]:
    if requested:
        outside = [
            ns for ns in requested if settings.allowed_namespaces and ns not in settings.allowed_namespaces
        ]
        if outside:
            raise ApplicationError(
                f"namespaces outside the allow list: {', '.join(outside)}",
                type="NamespaceNotAllowed",
                non_retryable=True,
            )
        return requested
    if settings.allowed_namespaces:
        return list(settings.allowed_namespaces)
    return sorted(
        ns.metadata.name
        for ns in apis.core.list_namespace().items
        if ns.metadata.name not in history.SKIP_NAMESPACES
    )


def list_changes_sync(request: ListChangesRequest) -> list[Change]:
    def work(apis: KubeApis, settings: Settings) -> list[Change]:
        namespaces = resolve_namespaces(apis, settings, request.namespaces)
        return ledger.list_changes(apis, namespaces, request.since, record_first=request.record_first)

    return _with_apis("listing cluster changes", work)


def remediate_sync(request: RemediationRequest) -> RemediationResult:
    doing = f"{request.operation} {request.target_type}/{request.namespace}/{request.name}"
    return _with_apis(doing, lambda apis, settings: remediation.remediate(apis, settings, request))


@activity.defn
async def remediate(request: RemediationRequest) -> RemediationResult:
    """Roll back / restore / pause / scale; idempotent under retries, refused outcomes are Failed."""
    return await asyncio.to_thread(remediate_sync, request)


@activity.defn
async def verify_rollout(request: VerifyRequest) -> VerificationResult:
    """Wait for the rollout (heartbeating); ProgressDeadlineExceeded is Failed, timeout Inconclusive."""
    doing = f"verifying {request.target_type}/{request.namespace}/{request.name}"
    if request.target_type != "deployment":
        return await asyncio.to_thread(
            _with_apis, doing, lambda apis, _settings: verify.verify(apis, request)
        )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + request.timeout_s
    try:
        apis = shared_apis(_settings())
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


ACTIVITIES: list[Callable[..., Any]] = [remediate, verify_rollout]
