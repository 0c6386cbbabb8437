"""recheck_eval: verify recovery by running a golden set again against its pinned baseline."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from evals.execute import execute_run
from evals.golden import EvalInputError, load_manifest
from evals.monitor import policy_of, settings_of
from evals.runner import RunFailed, ServiceUnreachable
from evals.stats import ComparisonError, compare
from evals.store import EvalStore
from evals.symptom import symptom_of
from incidents.models import EvalRecheckRequest, EvalSymptom
from worker.settings import current_settings


@activity.defn(name="recheck_eval")
async def recheck_eval(request: EvalRecheckRequest) -> EvalSymptom:
    """One fresh run compared with the baseline at the per-look alpha; `regression=False` means healed."""
    state_dir = current_settings().state_dir
    try:
        manifest = load_manifest(request.manifest)
        pinned = EvalStore(state_dir, manifest.name).baseline()
        if pinned is None:
            raise ApplicationError(
                f"golden set {manifest.name} has no pinned baseline to verify against",
                type="EvalInputError",
                non_retryable=True,
            )
        _, summary, results = await execute_run(request.manifest, state_dir, endpoint=request.endpoint)
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


ACTIVITIES = [recheck_eval]
