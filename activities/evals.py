"""Activities of EvalWorkflow: run a golden set and store it; judge the newest look against the baseline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from evals.contracts import EvalLookRequest, EvalRunRecord, EvalRunRequest
from evals.execute import execute_run
from evals.golden import EvalInputError, load_manifest
from evals.monitor import LookVerdict, evaluate_look
from evals.runner import RunFailed, ServiceUnreachable
from evals.stats import ComparisonError
from evals.store import EvalStore
from worker.settings import current_settings


def _state_dir(explicit: str | None) -> Path:
    return Path(explicit) if explicit else current_settings().state_dir


@activity.defn(name="eval_run_golden_set")
async def run_golden_set(request: EvalRunRequest) -> EvalRunRecord:
    def heartbeat(done: int, total: int) -> None:
        activity.heartbeat(done, total)

    try:
        manifest, summary, _ = await execute_run(
            request.manifest_path,
            _state_dir(request.state_dir),
            endpoint=request.endpoint,
            run_id=request.run_id,
            progress=heartbeat,
        )
    except EvalInputError as exc:
        raise ApplicationError(str(exc), type="EvalInputError", non_retryable=True) from exc
    except ServiceUnreachable as exc:
        raise ApplicationError(
            f"service unreachable: {exc}", type="ServiceUnreachable", non_retryable=True
        ) from exc
    except RunFailed as exc:
        raise ApplicationError(str(exc), type="RunFailed") from exc
    return EvalRunRecord(
        summary=summary,
        manifest_name=manifest.name,
        service=manifest.service,
        namespace=manifest.namespace,
        group=manifest.group,
    )


def _look(request: EvalLookRequest) -> LookVerdict:
    manifest = load_manifest(request.manifest_path)
    return evaluate_look(EvalStore(_state_dir(request.state_dir), manifest.name), manifest, request.run_id)


@activity.defn(name="eval_evaluate_look")
async def evaluate_look_activity(request: EvalLookRequest) -> LookVerdict:
    try:
        return await asyncio.to_thread(_look, request)
    except (EvalInputError, ComparisonError) as exc:
        raise ApplicationError(str(exc), type="EvalInputError", non_retryable=True) from exc


ACTIVITIES: list[Callable[..., Any]] = [run_golden_set, evaluate_look_activity]
