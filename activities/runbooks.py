"""load_runbooks_activity: read and lint the runbook files (I/O stays out of the workflow)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from runbooks.loader import RunbookLoadError, load_runbooks_cached
from runbooks.models import Runbook


class LoadRunbooksRequest(BaseModel):
    """`path`: a runbook file or a directory of them; None = the shipped library."""

    path: str | None = None


@activity.defn
async def load_runbooks_activity(request: LoadRunbooksRequest) -> list[Runbook]:
    """All runbooks under the path; a set with any lint problem is refused (not retried)."""
    paths = [request.path] if request.path else None
    try:
        return await asyncio.to_thread(load_runbooks_cached, paths)
    except RunbookLoadError as exc:
        raise ApplicationError(
            f"runbooks failed lint:\n{exc}", type="RunbookLintError", non_retryable=True
        ) from None
