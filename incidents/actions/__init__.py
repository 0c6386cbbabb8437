"""The runbook actions: one class per action, one module per class, found here by their module.

Adding an action is one module in this package (its YAML fields, how it plans itself and, when
it changes the cluster, the request it builds) plus, for a mutating action, its executor in
`activities/kube/actions/`. Runbook parsing, lint, the JSON schema, the engine and the
workflow read the actions from `ACTIONS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Union

from pydantic import Field

from incidents.actions.base import MODE_RANK, Action, Mode, Planned, Severity, effective_mode
from incidents.actions.escalate import EscalateAction
from incidents.actions.notify import NotifyAction
from incidents.actions.page import PageAction
from incidents.actions.pause_rollout import PauseRolloutAction
from incidents.actions.record import RecordAction
from incidents.actions.request_approval import ApprovalAction
from incidents.actions.rollback import RollbackAction
from incidents.actions.scale import ScaleAction
from incidents.actions.wait_verify import WaitVerifyAction
from incidents.discovery import classes_in, modules_of

__all__ = [
    "ACTIONS",
    "MODE_RANK",
    "MUTATING_ACTIONS",
    "Action",
    "ApprovalAction",
    "EscalateAction",
    "Mode",
    "NotifyAction",
    "PageAction",
    "PauseRolloutAction",
    "Planned",
    "PlannedAction",
    "RecordAction",
    "RollbackAction",
    "ScaleAction",
    "Severity",
    "WaitVerifyAction",
    "effective_mode",
]


def _discover() -> dict[str, type[Action]]:
    """Every concrete Action defined in a module of this package, by action name, in `position` order."""
    found = [
        action
        for action in classes_in(modules_of(__name__, __path__), Action)
        if isinstance(action.model_fields["type"].default, str)  # a concrete action names itself
    ]
    ordered = sorted(found, key=lambda cls: (cls.position, cls.action_name()))
    return {cls.action_name(): cls for cls in ordered}


ACTIONS: dict[str, type[Action]] = _discover()
MUTATING_ACTIONS: frozenset[str] = frozenset(name for name, cls in ACTIONS.items() if cls.mutates)

if TYPE_CHECKING:
    PlannedAction = Action
else:
    PlannedAction = Annotated[Union[tuple(ACTIONS.values())], Field(discriminator="type")]  # noqa: UP007
