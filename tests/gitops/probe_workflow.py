"""A minimal workflow that calls GitOps activities by name, to run them in a real Temporal worker."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.gitops.activities import OpenChangeRequestRequest, WriteRevertRequest
    from incidents.gitops import ChangeRequestResult, RevertResult


@workflow.defn
class GitOpsProbeWorkflow:
    """Writes a revert, then opens its pull request; returns what happened, failures included."""

    @workflow.run
    async def run(self, revert: WriteRevertRequest, change: OpenChangeRequestRequest) -> list[str]:
        timeout, once = timedelta(seconds=60), RetryPolicy(maximum_attempts=1)
        outcomes: list[str] = []
        written = await workflow.execute_activity(
            "gitops_write_revert",
            revert,
            result_type=RevertResult,
            start_to_close_timeout=timeout,
            retry_policy=once,
        )
        outcomes.append(f"{written.outcome}: {written.message}")
        try:
            opened = await workflow.execute_activity(
                "gitops_open_change_request",
                change,
                result_type=ChangeRequestResult,
                start_to_close_timeout=timeout,
                retry_policy=once,
            )
            outcomes.append(f"{opened.outcome}: {opened.message}")
        except ActivityError as err:
            outcomes.append(f"failed: {err.cause}")
        return outcomes
