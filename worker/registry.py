"""Every workflow and activity the worker registers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities import context, incidents, runbooks
from activities.paging import activities as paging
from worker.settings import Settings


def workflows() -> list[type]:
    from workflows.incident import IncidentWorkflow

    return [IncidentWorkflow]


def activities() -> list[Callable[..., Any]]:
    found: list[Callable[..., Any]] = []
    for module in (context, incidents, runbooks, paging):
        found.extend(module.ACTIVITIES)
    return found


def configure(settings: Settings) -> None:
    """Bind activity classes that hold settings to the worker's settings."""
    paging.configure(settings)
