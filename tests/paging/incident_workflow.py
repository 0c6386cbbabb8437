"""A small stand-in for the incident workflow: the same `approve` update contract and the same
paging path (workflows.paging over the PagerDuty and Slack channels), so the channels and the
Slack endpoint are tested on a real Temporal server with scenarios the test chooses."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.paging.channels import CHANNELS
    from incidents.models import (
        ActionRecord,
        ApprovalDecision,
        ApprovalRequest,
        ApprovalScope,
        ChatThread,
        IncidentReport,
        IncidentStateName,
        NotifyEvent,
    )
    from workflows.paging import PagingOutcome, notify_channels
    from workflows.summary import render_report

FAST_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    backoff_coefficient=1.5,
    maximum_interval=timedelta(milliseconds=500),
    maximum_attempts=3,
    non_retryable_error_types=["NotifyRejected", "OwnershipError"],
)


class Scenario(BaseModel):
    report: IncidentReport
    approval_request_id: str | None = None
    approval_timeout_s: float = 30.0
    rollback: ActionRecord | None = None


class ScenarioResult(BaseModel):
    outcomes: list[PagingOutcome] = Field(default_factory=list)
    decisions: list[ApprovalDecision] = Field(default_factory=list)
    threads: dict[str, ChatThread] = Field(default_factory=dict)

    @property
    def thread(self) -> ChatThread | None:
        return self.threads.get("slack")


@workflow.defn(name="PagingTestIncident")
class PagingTestIncident:
    def __init__(self) -> None:
        self._result = ScenarioResult()
        self._approval: ApprovalRequest | None = None
        self._scenario: Scenario | None = None

    async def _notify(
        self, report: IncidentReport, event: NotifyEvent, state: IncidentStateName, detail: str | None = None
    ) -> None:
        report.state = state
        channels = [CHANNELS["pagerduty"], CHANNELS["slack"]]
        outcome = await notify_channels(
            channels,
            event,
            render_report(report),
            self._result.threads,
            detail,
            retry=FAST_RETRY,
            timeout=timedelta(seconds=20),
        )
        self._result.threads = outcome.threads
        self._result.outcomes.append(outcome)

    @workflow.run
    async def run(self, scenario: Scenario) -> ScenarioResult:
        self._scenario = scenario
        report = scenario.report
        await self._notify(report, "opened", "open")
        if scenario.approval_request_id:
            self._approval = ApprovalRequest(
                request_id=scenario.approval_request_id,
                approvers=[],
                expires_at=workflow.now() + timedelta(seconds=scenario.approval_timeout_s),
                proposed=["rollback"],
            )
            report.approval = self._approval
            await self._notify(report, "approval_requested", "awaiting_approval")
            try:
                await workflow.wait_condition(
                    lambda: bool(self._result.decisions),
                    timeout=timedelta(seconds=scenario.approval_timeout_s),
                )
            except TimeoutError:
                await self._notify(report, "needs_human", "needs_human", detail="approval timed out")
                return self._result
            decision = self._result.decisions[0]
            if not decision.approve:
                await self._notify(
                    report, "needs_human", "needs_human", detail=f"rejected by {decision.user}"
                )
                return self._result
            await self._notify(report, "approved", "remediating", detail=f"approved by {decision.user}")
        if scenario.rollback is not None:
            report.actions.append(scenario.rollback)
            await self._notify(report, "rollback_performed", "verifying", detail=scenario.rollback.message)
        await self._notify(report, "recovered", "recovered")
        return self._result

    @workflow.update(name="approve")
    def approve(self, decision: ApprovalDecision) -> str:
        self._result.decisions.append(decision)
        return f"{'approved' if decision.approve else 'rejected'} by {decision.user}"

    @approve.validator
    def _validate_approve(self, decision: ApprovalDecision) -> None:
        if self._approval is None or decision.request_id != self._approval.request_id:
            raise ValueError(f"unknown approval request {decision.request_id}")
        if self._result.decisions:
            raise ValueError(f"approval request {decision.request_id} was already decided")
        if workflow.now() > self._approval.expires_at:
            raise ValueError(f"approval request {decision.request_id} has expired")

    @workflow.query(name="decisions")
    def decisions(self) -> list[ApprovalDecision]:
        return list(self._result.decisions)

    @workflow.query(name="approval_scope")
    def approval_scope(self) -> ApprovalScope:
        """The same query the real workflow answers: what the API checks an approver against."""
        report = self._scenario.report if self._scenario is not None else None
        return ApprovalScope(
            approval=self._approval,
            decided=bool(self._result.decisions),
            service=report.service if report else None,
            namespace=report.namespace if report else None,
            team=report.team if report else None,
        )
