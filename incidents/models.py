"""Typed contracts shared by the API, the incident workflow and its activities.

Everything that crosses a Temporal boundary (workflow input, signal, update, query,
activity argument or result) is one of these pydantic models, or one of the actions a
runbook plans (incidents.actions), or a remediation contract (incidents.remediation).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, Field, StringConstraints, model_validator

from incidents.actions import Mode, PlannedAction, Severity
from incidents.bundle import AttributionOutput, Change, IncidentBundle
from incidents.gitops import GitOpsRemediation, RevertPreview
from incidents.key import IncidentKey
from incidents.remediation import Outcome

IncidentStateName = Literal[
    "open",
    "collecting",
    "attributing",
    "deciding",
    "awaiting_approval",
    "remediating",
    "verifying",
    "recovered",
    "needs_human",
    "shadowed",
    "no_action",
    "resolved_before_action",
]
# Where a signal came from: an alert source's name (api/sources/<name>.py), "eval" or "manual".
IncidentSource = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*$")]
BUILT_IN_SOURCES: tuple[str, ...] = ("eval", "manual")

TERMINAL_STATES: frozenset[str] = frozenset(
    {"recovered", "needs_human", "shadowed", "no_action", "resolved_before_action"}
)


# --- Signals into an incident -------------------------------------------------------


# An alert names the metric that shows its symptom with this annotation (or label).
SYMPTOM_METRIC_ANNOTATION = "backout.dev/symptom-metric"
SYMPTOM_METRIC_LABEL = "backout_metric"
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class Alert(BaseModel):
    """One alert of an alert source's notification, normalised."""

    fingerprint: str
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str | None = None

    def symptom_metric(self) -> str | None:
        """The metric the alert says shows its symptom, if it names one."""
        return (
            self.annotations.get(SYMPTOM_METRIC_ANNOTATION) or self.labels.get(SYMPTOM_METRIC_LABEL) or None
        )

    def is_about(self, metric: str) -> bool:
        """Whether the alert watches `metric`: it names it as its symptom, or its rule's expression
        (Prometheus' generator URL, `g0.expr=`) uses it."""
        if self.symptom_metric() == metric:
            return True
        if not self.generator_url:
            return False
        query = parse_qs(urlsplit(self.generator_url).query)
        expressions = [*query.get("g0.expr", []), *query.get("expr", [])]
        return any(metric in _METRIC_NAME.findall(expression) for expression in expressions)


class EvalSymptom(BaseModel):
    """A golden-set regression, delivered to an incident exactly like an alert."""

    manifest: str
    manifest_path: str | None = None
    endpoint: str | None = None
    service: str
    namespace: str | None = None
    run_id: str
    metric: str = "pass_rate"
    baseline: float
    candidate: float
    delta: float
    p_value: float | None = None
    ci: tuple[float, float] | None = None
    test: str | None = None
    regression: bool = True
    series: list[tuple[datetime, float]] = Field(default_factory=list)
    observed_at: datetime


class EvalRecheckRequest(BaseModel):
    """Run a golden set once more and compare with its pinned baseline (verification)."""

    manifest: str
    incident_id: str
    service: str | None = None
    namespace: str | None = None
    endpoint: str | None = None


class IncidentSignal(BaseModel):
    """What the webhook or the eval workflow delivers with signal-with-start."""

    source: IncidentSource
    received_at: datetime
    alerts: list[Alert] = Field(default_factory=list)
    eval: EvalSymptom | None = None
    group_key: str | None = None
    external_url: str | None = None
    # Alerts of the notification not carried: the sender's truncatedAlerts, alerts outside the
    # namespace allow list and those over the signal's size budget (incidents/limits.py).
    truncated: int = 0


def _flat_key(data: Any) -> Any:
    """Inputs recorded before the key was carried whole held its fields flat: namespace, service, group."""
    if isinstance(data, dict) and "key" not in data and "group" in data:
        data = dict(data)
        data["key"] = {name: data.pop(name, None) for name in ("namespace", "service", "group")}
    return data


class IncidentInput(BaseModel):
    incident_id: str  # the workflow id: key.workflow_id() for every incident the starter opens
    key: IncidentKey
    source: IncidentSource
    # Behaviour knobs, fixed at start so that replays see the same values.
    settle_s: float = 5.0
    cooldown_s: float = 600.0
    lookback_s: int = 7200
    runbook_dir: str | None = None
    eval_manifest: str | None = None
    eval_endpoint: str | None = None
    public_url: str = "http://127.0.0.1:8080"
    temporal_ui_url: str | None = None
    # The paging channels to call, in order (activities/paging/channels); incidents started before
    # the list existed called these two.
    channels: list[str] = Field(default_factory=lambda: ["pagerduty", "slack"])
    # While an approval is pending the incident looks again this often (changes, culprit, plan).
    approval_recheck_s: float = 60.0

    @model_validator(mode="before")
    @classmethod
    def _recorded_flat(cls, data: Any) -> Any:
        return _flat_key(data)


# --- Runbook decisions (runbooks.decide, pure and deterministic; actions in incidents.actions)


class DecisionContext(BaseModel):
    """Everything a runbook condition may look at. Built inside the workflow."""

    incident_id: str
    service: str | None = None
    namespace: str | None = None
    source: str
    severity: str | None = None
    alertnames: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    attribution: AttributionOutput | None = None
    changes: list[Change] = Field(default_factory=list)
    eval: EvalSymptom | None = None
    now: datetime
    recent_rollbacks: int = 0
    # Evidence queries that brought nothing (Prometheus away, too slow, answering garbage), and
    # how many metric series the incident has.
    missing_evidence: list[str] = Field(default_factory=list)
    evidence_series: int = 0


class DecisionStep(BaseModel):
    node: str
    condition: str | None = None
    value: Any = None
    note: str | None = None


class Decision(BaseModel):
    runbook: str | None = None
    mode: Mode = "shadow"
    path: list[DecisionStep] = Field(default_factory=list)
    actions: list[PlannedAction] = Field(default_factory=list)


# --- Context collection ---------------------------------------------------------------


class ContextRequest(BaseModel):
    incident_id: str
    service: str | None = None
    namespace: str | None = None
    source: str
    detected_at: datetime
    labels: dict[str, str] = Field(default_factory=dict)
    eval: EvalSymptom | None = None
    lookback_s: int = 7200
    alerts: list[Alert] = Field(default_factory=list)


class ContextResult(BaseModel):
    bundle: IncidentBundle
    notes: list[str] = Field(default_factory=list)
    recent_rollbacks: int = 0
    # Names of the evidence queries that brought nothing; why is in `notes`.
    missing_evidence: list[str] = Field(default_factory=list)
    # Why the cluster's changes could not be read (None: they were): a bundle without them is partial.
    cluster_error: str | None = None


class AttributedContext(BaseModel):
    """The context and its ranking, made by one local activity (collect_and_attribute)."""

    context: ContextResult
    attribution: AttributionOutput


# --- Notification (activities/paging) -------------------------------------------------

NotifyEvent = Literal[
    "opened",
    "update",
    "approval_requested",
    "approved",
    "rejected",
    "rollback_performed",
    "recovered",
    "needs_human",
    "shadowed",
    "resolved_before_action",
]


class ActionRecord(BaseModel):
    at: datetime
    action: str
    mode: Mode
    outcome: Outcome | Literal["skipped", "would_have", "pending"]
    target: str | None = None
    message: str = ""
    diff: str = ""
    # A server-side dry run (kube_dry_run): validated by the cluster, nothing changed.
    dry_run: bool = False


class PlannedChange(BaseModel):
    """One change to the cluster an approval covers, exactly as it will be requested."""

    action: str
    target: str  # target_type/namespace/name
    change_id: str | None = None
    from_version: str | None = None  # what runs now (the culprit change's new version)
    to_version: str | None = None  # what it goes back to (a version, or a revision number)
    replicas: int | None = None

    def describe(self) -> str:
        versions = ""
        if self.from_version or self.to_version:
            versions = f" from {self.from_version or '?'} to {self.to_version or 'the previous revision'}"
        if self.replicas is not None:
            versions += f" to {self.replicas} replicas"
        return f"{self.action} {self.target}{versions}" + (
            f" (change {self.change_id})" if self.change_id else ""
        )


class ApprovalRequest(BaseModel):
    request_id: str
    approvers: list[str] = Field(default_factory=list)
    expires_at: datetime
    proposed: list[str] = Field(default_factory=list)
    # The exact changes this request asks for and their digest: a decision answers this plan only,
    # and a new plan (another culprit first, a new change) withdraws the request and asks again.
    # Empty on requests made before approvals were bound to their plan.
    plan: list[PlannedChange] = Field(default_factory=list)
    plan_id: str | None = None
    # A GitOps-managed rollback: the commit and the diff it would push (workflows/gitops.py).
    revert: RevertPreview | None = None


class ApprovalDecision(BaseModel):
    """A decision on a pending approval. `user` is the verified identity (the Slack user who
    clicked, the API credential's identity), never what a request body claims; `aliases` are the
    other names the API resolved for it (email, Slack user groups, teams of the ownership file)."""

    request_id: str
    approve: bool
    user: str
    source: Literal["slack", "api", "cli"] = "api"
    reason: str | None = None
    aliases: list[str] = Field(default_factory=list)
    # The plan the approver saw (the request's plan_id): refused when the pending plan differs.
    plan_id: str | None = None

    def names(self) -> set[str]:
        """Every name the approver answers to, as runbook approvers may list it."""
        return {self.user, *self.aliases}


class Culprit(BaseModel):
    """One ranked change, described for people."""

    change_id: str
    probability: float
    change: str
    reasons: list[str] = Field(default_factory=list)


class IncidentReport(BaseModel):
    """A self-contained snapshot of an incident for pagers, chat and reports.

    The workflow writes the words (workflows/summary.py): `summary`, `symptom`, `culprits` (the
    ranking, described) and `done` (each action record, described); a channel only lays them out.
    """

    incident_id: str
    title: str
    state: IncidentStateName
    service: str | None = None
    namespace: str | None = None
    source: str
    severity: Severity = "critical"
    team: str | None = None
    detected_at: datetime
    labels: dict[str, str] = Field(default_factory=dict)
    attribution: AttributionOutput | None = None
    changes: list[Change] = Field(default_factory=list)
    actions: list[ActionRecord] = Field(default_factory=list)
    approval: ApprovalRequest | None = None
    eval: EvalSymptom | None = None
    summary: str = ""
    symptom: str = ""
    culprits: list[Culprit] = Field(default_factory=list)
    done: list[str] = Field(default_factory=list)
    links: dict[str, str] = Field(default_factory=dict)
    gitops: GitOpsRemediation | None = None

    def last_rollback(self) -> tuple[ActionRecord, str] | None:
        """The last rollback the incident made, and how the report describes it."""
        found = [
            (record, self.done[index] if index < len(self.done) else record.action)
            for index, record in enumerate(self.actions)
            if record.action == "rollback"
        ]
        return found[-1] if found else None


class ChatThread(BaseModel):
    channel: str
    ts: str


class NotifyRequest(BaseModel):
    event: NotifyEvent
    report: IncidentReport
    thread: ChatThread | None = None
    detail: str | None = None
    # A runbook's notify step may name a chat channel: the message goes there, not to the thread.
    chat_channel: str | None = None


class NotifyResult(BaseModel):
    channel: str  # the paging channel's name (activities/paging/channels)
    outcome: Outcome
    message: str = ""
    thread: ChatThread | None = None
    dedup_key: str | None = None
    # False: the channel sent nothing (nothing to say for this event, or not configured). Such an
    # answer stays in the incident's delivery record and is not a timeline entry.
    sent: bool = True

    @model_validator(mode="before")
    @classmethod
    def _recorded_without_sent(cls, data: Any) -> Any:
        """Results recorded before `sent` existed said it in words."""
        if isinstance(data, dict) and "sent" not in data:
            message = str(data.get("message", ""))
            if message.startswith("nothing to send") or message.endswith("nothing sent"):
                data = {**data, "sent": False}
        return data


# --- Queryable incident state ----------------------------------------------------------


class TimelineEntry(BaseModel):
    at: datetime
    kind: Literal["step", "decision", "action", "signal", "error", "note"]
    step: str
    message: str
    data: dict[str, Any] = Field(default_factory=dict)


class DeliveryRecord(BaseModel):
    """One event through one paging channel, as the channel answered: the audit trail behind the
    timeline's delivery lines (which show only what was sent, one line per channel and step)."""

    at: datetime
    event: NotifyEvent
    channel: str
    outcome: Outcome
    sent: bool
    message: str = ""


class IncidentView(BaseModel):
    """The workflow query result and the body of GET /v1/incidents/{id}."""

    id: str
    state: IncidentStateName
    source: str
    service: str | None = None
    namespace: str | None = None
    group: str
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    alerts: list[Alert] = Field(default_factory=list)
    eval: EvalSymptom | None = None
    attribution: AttributionOutput | None = None
    decision: Decision | None = None
    actions: list[ActionRecord] = Field(default_factory=list)
    approval: ApprovalRequest | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    deliveries: list[DeliveryRecord] = Field(default_factory=list)
    summary: str = ""
    # The GitOps handshake of a rollback of a Flux/Argo CD-managed object (workflows/gitops.py).
    gitops: GitOpsRemediation | None = None
    # A page of a large incident (the `view_page` query): how many of each list there are in all.
    alerts_total: int | None = None
    timeline_total: int | None = None
    deliveries_total: int | None = None
    alerts_not_kept: int = 0

    def timeline_for_people(self, verbose: bool = False) -> list[TimelineEntry]:
        """The timeline in time order; `verbose` adds every delivery, also those that sent nothing."""
        entries = list(self.timeline)
        if verbose:
            entries += [
                TimelineEntry(
                    at=record.at,
                    kind="note",
                    step=f"notify_{record.channel}",
                    message=f"{record.channel} {record.event}: {record.outcome}"
                    + ("" if record.sent else ", nothing sent")
                    + (f": {record.message}" if record.message else ""),
                )
                for record in self.deliveries
            ]
        return sorted(entries, key=lambda entry: entry.at)


class ViewPage(BaseModel):
    """Which slice of an incident's alerts, timeline and deliveries the `view_page` query returns."""

    alerts_offset: int = Field(default=0, ge=0)
    alerts_limit: int = Field(default=100, ge=0, le=1000)
    timeline_offset: int = Field(default=0, ge=0)
    timeline_limit: int = Field(default=300, ge=0, le=1000)
    deliveries_offset: int = Field(default=0, ge=0)
    deliveries_limit: int = Field(default=300, ge=0, le=1000)


class ApprovalScope(BaseModel):
    """What the API needs to authorise a decision: the pending request and whose incident it is."""

    approval: ApprovalRequest | None = None
    decided: bool = False
    service: str | None = None
    namespace: str | None = None
    team: str | None = None


class OpenIncidentRequest(BaseModel):
    """Start the incident for `key` or join the running one (signal-with-start, USE_EXISTING)."""

    key: IncidentKey
    signal: IncidentSignal

    @model_validator(mode="before")
    @classmethod
    def _recorded_flat(cls, data: Any) -> Any:
        return _flat_key(data)
