"""Pydantic models of a runbook file (what people write in YAML).

A runbook matches incidents and holds a decision tree: condition nodes (`if`/`then`/
`else`) and action nodes (`actions`, optional `next`). The decision the tree produces
is made of `incidents.actions.PlannedAction`s; each step holds one action of `incidents.actions`.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from incidents.actions import ACTIONS, Action, Mode, Severity
from incidents.models import IncidentSource
from runbooks.regex import PatternError, compile_pattern

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
NODE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class LabelMatcher(_Strict):
    """A Prometheus-style matcher: `op` is =, !=, =~ or !~ (regexes are RE2, fully anchored, and
    run in time linear in the label value: runbooks/regex.py)."""

    name: str = Field(min_length=1)
    op: Literal["=", "!=", "=~", "!~"] = "="
    value: str = Field(max_length=1000)

    @model_validator(mode="after")
    def _valid_regex(self) -> LabelMatcher:
        if self.op in ("=~", "!~"):
            try:
                compile_pattern(self.value)
            except PatternError as exc:
                raise ValueError(str(exc)) from None
        return self


class Match(_Strict):
    """Which incidents a runbook handles. Every given criterion must hold; lists mean any of."""

    alertnames: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict, description="exact label values")
    matchers: list[LabelMatcher] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list)
    severities: list[Severity] = Field(default_factory=list)
    sources: list[IncidentSource] = Field(
        default_factory=list, description="alertmanager, grafana (an alert source's name), eval or manual"
    )
    eval_regression: bool | None = Field(
        default=None, description="true: only eval regressions; false: never eval regressions"
    )


def _time_of_day(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 16:00 as the base-60 number 960.
        raise ValueError("write times of day quoted, e.g. '16:00'")
    return value


TimeOfDay = Annotated[time, BeforeValidator(_time_of_day)]


class FreezeWindow(_Strict):
    """A change freeze, either recurring (days + start/end time of day, UTC) or absolute."""

    name: str
    days: list[Weekday] = Field(default_factory=list, description="empty = every day")
    start: TimeOfDay | None = Field(default=None, description="UTC, quoted: '16:00'")
    end: TimeOfDay | None = Field(default=None, description="UTC, quoted; empty = until midnight")
    start_at: datetime | None = Field(default=None, alias="from")
    end_at: datetime | None = Field(default=None, alias="until")

    @field_validator("start_at", "end_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a UTC offset, e.g. 2026-11-27T00:00:00Z")
        return value


# --- Action steps (one key per step, e.g. `- rollback: {kinds: [model]}`) --------------------


class _ActionStepBase(_Strict):
    """Exactly one action per step, keyed by its name (incidents.actions)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `- pause_rollout:` or `- record: "note"` read better than `{}` / `{note: ...}`.
        if isinstance(data, dict) and len(data) == 1:
            key, value = next(iter(data.items()))
            action = ACTIONS.get(key) if isinstance(key, str) else None
            if action is not None:
                return {key: action.from_shorthand(value)}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> _ActionStepBase:
        chosen = [name for name in ACTION_NAMES if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(
                f"each action step names exactly one action ({', '.join(ACTION_NAMES)}); got {len(chosen)}"
            )
        return self

    @property
    def name(self) -> str:
        return next(name for name in ACTION_NAMES if getattr(self, name) is not None)

    @property
    def action(self) -> Action:
        action: Action = getattr(self, self.name)
        return action


ACTION_NAMES: tuple[str, ...] = tuple(ACTIONS)
if TYPE_CHECKING:
    ActionStep = _ActionStepBase
else:
    ActionStep = create_model(
        "ActionStep",
        __base__=_ActionStepBase,
        __doc__="Exactly one of the fields below.",
        **{
            name: (action | None, Field(default=None, description=(action.__doc__ or "").strip() or None))
            for name, action in ACTIONS.items()
        },
    )


class TreeNode(_Strict):
    """Either a condition (`if`, `then`, `else`) or actions (`actions`, optional `next`)."""

    description: str | None = None
    condition: str | None = Field(default=None, alias="if", description="expression; see docs")
    then: str | None = None
    otherwise: str | None = Field(default=None, alias="else")
    actions: list[ActionStep] | None = None
    next: str | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> TreeNode:
        if self.condition is not None:
            if self.actions is not None or self.next is not None:
                raise ValueError(
                    "a node is either a condition (if/then/else) or actions (actions/next), not both"
                )
            if self.then is None or self.otherwise is None:
                raise ValueError("a condition node needs both 'then' and 'else'")
        elif self.actions is None:
            raise ValueError("a node needs 'if' (with 'then' and 'else') or 'actions'")
        elif self.then is not None or self.otherwise is not None:
            raise ValueError("'then' and 'else' belong to a condition node (add 'if')")
        return self

    def successors(self) -> list[str]:
        if self.condition is not None:
            return [name for name in (self.then, self.otherwise) if name is not None]
        return [self.next] if self.next is not None else []


class Runbook(_Strict):
    """One runbook file."""

    name: str = Field(pattern=NODE_NAME.pattern)
    description: str = ""
    owner: str | None = Field(default=None, description="team that maintains the runbook")
    mode: Mode = Field(description="default mode of every action, and the most any action may use")
    priority: int = Field(default=0, description="higher wins when several runbooks match")
    match: Match
    freeze_windows: list[FreezeWindow] = Field(default_factory=list)
    start: str
    nodes: dict[str, TreeNode] = Field(min_length=1)
    source: str | None = Field(default=None, description="file it was loaded from (set by the loader)")

    @field_validator("nodes")
    @classmethod
    def _node_names(cls, nodes: dict[str, TreeNode]) -> dict[str, TreeNode]:
        for name in nodes:
            if not NODE_NAME.match(name):
                raise ValueError(
                    f"node name {name!r} must start with a letter and use letters, digits, _ or -"
                )
        return nodes
