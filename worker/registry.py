"""Every workflow and activity the worker registers, the activities bound to the worker's settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.attribution import AttributionActivities
from activities.context import ContextActivities
from activities.evals import EvalActivities
from activities.gitops.activities import GitOpsActivities
from activities.incidents import IncidentActivities
from activities.kube.activities import KubeActivities
from activities.paging.channels import CHANNELS
from activities.runbooks import load_runbooks_activity
from config import Settings


def workflows() -> list[type]:
    from workflows.eval import EvalWorkflow
    from workflows.incident import IncidentWorkflow

    return [IncidentWorkflow, EvalWorkflow]


def activities(settings: Settings) -> list[Callable[..., Any]]:
    """One instance of each activity class, given the settings (and through them, its clients)."""
    attribution = AttributionActivities(settings)
    context = ContextActivities(settings, attribution)
    kube = KubeActivities(settings)
    evals = EvalActivities(settings)
    incidents = IncidentActivities(settings)
    return [
        context.collect_context,
        context.collect_and_attribute,
        attribution.attribute_bundle,
        load_runbooks_activity,
        kube.remediate,
        kube.verify_rollout,
        evals.run_golden_set,
        evals.evaluate_look,
        evals.recheck_eval,
        incidents.open_or_join_incident,
        *GitOpsActivities.for_settings(settings).all,
        *(channel(settings).notify for channel in CHANNELS.values()),
    ]
