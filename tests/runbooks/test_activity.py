"""load_runbooks_activity and the Runbook model across the Temporal boundary."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.runbooks import LoadRunbooksRequest, load_runbooks_activity
from runbooks.models import Runbook

BROKEN = Path(__file__).parent / "broken"


async def test_loads_the_shipped_library() -> None:
    runbooks = await ActivityEnvironment().run(load_runbooks_activity, LoadRunbooksRequest())
    names = [runbook.name for runbook in runbooks]
    assert names == sorted(names)
    assert {"llm-quality-rollback", "rag-shadow-trial", "kv-cache-saturation", "gpu-health"} <= set(names)


async def test_refuses_runbooks_that_fail_lint() -> None:
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(
            load_runbooks_activity, LoadRunbooksRequest(path=str(BROKEN / "cycle.yaml"))
        )
    assert caught.value.non_retryable
    assert "cycle.yaml:13:11: cycle: a -> b -> a" in str(caught.value)


async def test_runbooks_survive_the_pydantic_data_converter() -> None:
    runbooks = await ActivityEnvironment().run(load_runbooks_activity, LoadRunbooksRequest())
    converter = pydantic_data_converter.payload_converter
    payloads = converter.to_payloads([runbooks])
    [restored] = converter.from_payloads(payloads, [list[Runbook]])
    assert restored == runbooks
