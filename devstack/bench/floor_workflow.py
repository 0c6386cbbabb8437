"""The bare workflow the latency bench times as its Temporal floor: start, complete, return."""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="BackoutBenchNoop")
class NoopWorkflow:
    @workflow.run
    async def run(self, value: int) -> int:
        return value
