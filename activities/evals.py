"""Golden-set activities: a scheduled run and its look against the baseline (EvalWorkflow), and
the re-run that verifies an incident's recovery (IncidentWorkflow)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from config import Settings
from evals.contracts import EvalLookRequest, EvalRunRecord, EvalRunRequest
from evals.execute import execute_run
from evals.golden import EvalInputError, load_manifest
from evals.judge import deployment_judge
from evals.monitor import LookVerdict, evaluate_look, policy_of, settings_of
from evals.runner import RunFailed, ServiceUnreachable
from evals.stats import ComparisonError, compare
from evals.store import EvalStore
from evals.symptom import symptom_of
from incidents.models import EvalRecheckRequest, EvalSymptom


class EvalActivities:
    """Golden-set runs, stored under the settings' state directory (unless a request names another)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _state_dir(self, explicit: str | None) -> Path:
        return Path(explicit) if explicit else self.settings.state_dir

    @activity.defn(name="eval_run_golden_set")
    async def run_golden_set(self, request: EvalRunRequest) -> EvalRunRecord:
        def heartbeat(done: int, total: int) -> None:
            activity.heartbeat(done, total)

        try:
            manifest, summary, _ = await execute_run(
                request.manifest_path,
                self._state_dir(request.state_dir),
                endpoint=request.endpoint,
                run_id=request.run_id,
                progress=heartbeat,
                default_judge=deployment_judge(self.settings),
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

    def _look(self, request: EvalLookRequest) -> LookVerdict:
        manifest = load_manifest(request.manifest_path)
        store = EvalStore(self._state_dir(request.state_dir), manifest.name)
        return evaluate_look(store, manifest, request.run_id)

    @activity.defn(name="eval_evaluate_look")
    async def evaluate_look(self, request: EvalLookRequest) -> LookVerdict:
        try:
            return await asyncio.to_thread(self._look, request)
        except (EvalInputError, ComparisonError) as exc:
            raise ApplicationError(str(exc), type="EvalInputError", non_retryable=True) from exc

    @activity.defn(name="recheck_eval")
    async def recheck_eval(self, request: EvalRecheckRequest) -> EvalSymptom:
        """One fresh run compared with the baseline at the per-look alpha; `regression=False` means healed."""
        state_dir = self.settings.state_dir
        try:
            manifest = load_manifest(request.manifest)
            pinned = EvalStore(state_dir, manifest.name).baseline()
            if pinned is None:
                raise ApplicationError(
                    f"golden set {manifest.name} has no pinned baseline to verify against",
                    type="EvalInputError",
                    non_retryable=True,
                )
            _, summary, results = await execute_run(
                request.manifest,
                state_dir,
                endpoint=request.endpoint,
                default_judge=deployment_judge(self.settings),
            )
            comparison = compare(
                pinned[1], [results], settings_of(manifest), alpha=policy_of(manifest).alpha_per_look
            )
        except (EvalInputError, ComparisonError) as exc:
            raise ApplicationError(str(exc), type="EvalInputError", non_retryable=True) from exc
        except (ServiceUnreachable, RunFailed) as exc:
            raise ApplicationError(f"golden set run failed: {exc}", type="RunFailed") from exc
        return symptom_of(
            comparison,
            manifest=manifest.name,
            manifest_path=request.manifest,
            endpoint=request.endpoint,
            service=manifest.service,
            namespace=manifest.namespace,
            run_id=summary.run_id,
            observed_at=datetime.now(UTC),
        )
