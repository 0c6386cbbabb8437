"""Every workflow and activity the worker registers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities import attribution, context, evals, incidents, runbooks, verification
from activities.kube import activities as kube
from activities.paging.channels import CHANNELS


def workflows() -> list[type]:
    from workflows.eval import EvalWorkflow
    from workflows.incident import IncidentWorkflow

    return [IncidentWorkflow, EvalWorkflow]


def activities() -> list[Callable[..., Any]]:
    found: list[Callable[..., Any]] = []
    for module in (context, incidents, attribution, runbooks, kube, evals, verification):
        found.extend(module.ACTIVITIES)
    found.extend(channel().notify for channel in CHANNELS.values())
    return found
