"""A minimal workflow that calls runbooks.engine.decide inside Temporal's sandbox, as the incident workflow does."""

from __future__ import annotations

from temporalio import workflow

# Not passed through: the sandbox re-imports the engine, proving it is sandbox-safe on its own.
from runbooks.engine import decide

with workflow.unsafe.imports_passed_through():
    from incidents.models import Decision, DecisionContext
    from runbooks.models import Runbook


@workflow.defn
class DecideWorkflow:
    @workflow.run
    async def run(self, runbooks: list[Runbook], ctx: DecisionContext) -> Decision:
        return decide(runbooks, ctx)
