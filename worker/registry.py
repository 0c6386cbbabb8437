"""Every workflow and activity the worker registers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities import context, incidents


def workflows() -> list[type]:
    from workflows.incident import IncidentWorkflow

    return [IncidentWorkflow]


def activities() -> list[Callable[..., Any]]:
    found: list[Callable[..., Any]] = []
    for module in (context, incidents):
        found.extend(module.ACTIVITIES)
    return found
