"""A workflow that runs the real `remediate` activity once and says how it failed."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.kube.activities import KubeActivities
    from incidents.remediation import RemediationRequest
    from workflows.retries import REMEDIATE_RETRY


class ActivityFailure(BaseModel):
    message: str
    type: str | None
    non_retryable: bool
    retry_state: str


@workflow.defn
class RemediateProbe:
    @workflow.run
    async def run(self, request: RemediationRequest) -> ActivityFailure | None:
        try:
            await workflow.execute_activity_method(
                KubeActivities.remediate,
                request,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=REMEDIATE_RETRY,
            )
        except ActivityError as error:
            cause = error.cause
            assert isinstance(cause, ApplicationError)
            return ActivityFailure(
                message=cause.message,
                type=cause.type,
                non_retryable=cause.non_retryable,
                retry_state=error.retry_state.name if error.retry_state is not None else "",
            )
        return None
