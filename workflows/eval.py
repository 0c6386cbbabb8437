"""EvalWorkflow: run a golden set, compare with the pinned baseline, open or join an incident on regression.

Deterministic: the activities in activities/evals.py do all I/O. The incident is opened through
IncidentActivities.open_or_join_incident (signal-with-start, like the alert sources).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.evals import EvalActivities
    from activities.incidents import IncidentActivities
    from evals.contracts import (
        EvalLookRequest,
        EvalRunRequest,
        EvalWorkflowInput,
        EvalWorkflowResult,
    )
    from evals.symptom import symptom_of
    from incidents.key import IncidentKey
    from incidents.models import IncidentSignal, OpenIncidentRequest

UNREACHABLE_ERROR = "ServiceUnreachable"
BAD_INPUT_ERROR = "EvalInputError"


@workflow.defn(name="EvalWorkflow")
class EvalWorkflow:
    @workflow.run
    async def run(self, request: EvalWorkflowInput) -> EvalWorkflowResult:
        now = workflow.now()
        run_id = f"{now:%Y%m%dT%H%M%S%fZ}-{workflow.uuid4().hex[:6]}"  # sorts by time within a second too
        try:
            record = await workflow.execute_activity_method(
                EvalActivities.run_golden_set,
                EvalRunRequest(
                    manifest_path=request.manifest_path,
                    state_dir=request.state_dir,
                    endpoint=request.endpoint,
                    run_id=run_id,
                ),
                start_to_close_timeout=timedelta(minutes=30),
                retry_policy=RetryPolicy(
                    maximum_attempts=2, non_retryable_error_types=[UNREACHABLE_ERROR, BAD_INPUT_ERROR]
                ),
            )
        except ActivityError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.type == UNREACHABLE_ERROR:
                workflow.logger.warning("eval run %s: service unreachable: %s", run_id, cause.message)
                return EvalWorkflowResult(status="service_unreachable", run_id=run_id, message=cause.message)
            raise
        verdict = await workflow.execute_activity_method(
            EvalActivities.evaluate_look,
            EvalLookRequest(manifest_path=request.manifest_path, state_dir=request.state_dir, run_id=run_id),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=[BAD_INPUT_ERROR]),
        )
        comparison = verdict.comparison
        result = EvalWorkflowResult(
            status="regression" if verdict.regression else "ok",
            run_id=run_id,
            pass_rate=record.summary.pass_rate,
            look_status=verdict.status,
            regression=verdict.regression,
            p_value=comparison.p_value if comparison else None,
            delta=comparison.delta if comparison else None,
            message=verdict.note,
        )
        if comparison is None or not comparison.regression:
            return result
        symptom = symptom_of(
            comparison,
            manifest=record.manifest_name,
            manifest_path=request.manifest_path,
            endpoint=request.endpoint,
            service=record.service,
            namespace=record.namespace,
            run_id=run_id,
            observed_at=record.summary.finished_at,
            series=verdict.series,
        )
        opened = OpenIncidentRequest(
            key=IncidentKey(namespace=record.namespace, service=record.service, group=record.group),
            signal=IncidentSignal(source="eval", received_at=workflow.now(), eval=symptom),
        )
        result.incident_id = await workflow.execute_activity_method(
            IncidentActivities.open_or_join_incident,
            opened,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=1)),
        )
        return result
