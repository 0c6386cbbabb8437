"""The words of an incident report: the root-cause summary and the lines every channel shows.

PURE: stdlib and pydantic models only, no I/O, no clock, so the incident workflow renders its
report inside the Temporal sandbox and replay gets the same text. The paging channels only
lay these words out for their vendor (activities/paging/channels).
"""

from __future__ import annotations

from datetime import datetime

from incidents.bundle import Change, RankedChange
from incidents.gitops import GitOpsRemediation
from incidents.models import ActionRecord, Culprit, IncidentReport

_OUTCOME_BY_STATE: dict[str, str] = {
    "recovered": "Recovery verified.",
    "needs_human": "Not resolved automatically: needs a human.",
    "shadowed": "Shadow mode: nothing was changed.",
    "no_action": "No action was taken.",
    "resolved_before_action": "The symptom cleared before any action.",
    "awaiting_approval": "Waiting for a human to approve.",
    "remediating": "Remediation in progress.",
    "verifying": "Remediation applied; verifying recovery.",
}
_MAX_REASONS = 2


def _clock(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when.utcoffset() is not None else when.isoformat()


def describe_symptom(report: IncidentReport) -> str:
    where = report.service or "an unknown service"
    if report.namespace:
        where += f" ({report.namespace})"
    if report.eval is not None:
        ev = report.eval
        return (
            f"golden-set {ev.metric} of {where} fell from {ev.baseline:.3f} to {ev.candidate:.3f}"
            f" (delta {ev.delta:+.3f}" + (f", p={ev.p_value:.3g}" if ev.p_value is not None else "") + ")"
        )
    alertname = report.labels.get("alertname")
    return f"{alertname} on {where}" if alertname else f"{report.title} on {where}"


def describe_change(change: Change | None, ranked: RankedChange) -> str:
    if change is None:
        return f"change {ranked.change_id}"
    parts = [f"{change.kind} change {change.id} to {change.service}"]
    if change.author:
        parts.append(f"by {change.author}")
    parts.append(f"at {_clock(change.started_at)}")
    text = " ".join(parts)
    if change.from_version or change.to_version:
        text += f", {change.from_version or '?'} -> {change.to_version or '?'}"
    if change.description:
        text += f" ({change.description})"
    commit = change.gitops.commit if change.gitops is not None else None
    if change.gitops is not None and commit is not None:
        text += (
            f", Git commit {commit.sha[:12]}" + (f" by {commit.author}" if commit.author else "")
            + (f' "{commit.message}"' if commit.message else "") + f" in {change.gitops.repository}"
        )  # fmt: skip
    return text


_GITOPS_STAGES: dict[str, str] = {
    "prepared": "preparing the GitOps rollback",
    "suspended": "reconciliation suspended",
    "rolled_back": "rolled back in the cluster, reconciliation suspended",
    "awaiting_merge": "revert written to Git, waiting for it to land; reconciliation suspended",
    "landed": "the revert landed in Git",
    "resumed": "reconciliation resumed, waiting for the reconciler to apply the revert",
    "reconciled": "durable: the revert is in Git and the reconciler applies it",
    "failed": "the durable fix did not complete; reconciliation stays suspended",
    "refused": "the runbook refuses to roll back a GitOps-managed object",
    "dry_run": "dry run: nothing suspended, nothing pushed",
    "left_suspended": "reconciliation left suspended for a human to revert in Git",
}


def describe_gitops(progress: GitOpsRemediation) -> str:
    """One line: the owner, where the revert is, how far the handshake went."""
    owner = progress.ownership.reconciler.describe() if progress.ownership else "the reconciler"
    line = f"GitOps ({owner}, policy {progress.policy}): {_GITOPS_STAGES[progress.stage]}"
    if progress.revert is not None or progress.change_request is not None:
        line += f"; {progress.describe_revert()}"
    return line + (f" ({progress.message})" if progress.message else "") + "."


def _culprit_lines(report: IncidentReport) -> list[str]:
    ranking = report.attribution.ranking if report.attribution else []
    if not ranking:
        return ["Culprit: no candidate change was found."]
    by_id = {change.id: change for change in report.changes}
    top = ranking[0]
    line = f"Likely cause (p={top.probability:.2f}): {describe_change(by_id.get(top.change_id), top)}."
    if top.reasons:
        line += " Evidence: " + "; ".join(top.reasons[:_MAX_REASONS]) + "."
    lines = [line]
    if len(ranking) > 1:
        runner = ranking[1]
        lines.append(
            f"Runner-up (p={runner.probability:.2f}): {describe_change(by_id.get(runner.change_id), runner)}."
        )
    else:
        lines.append("Runner-up: none (only one candidate change).")
    return lines


def describe_action(record: ActionRecord) -> str:
    target = f" {record.target}" if record.target else ""
    if record.outcome == "would_have" and record.dry_run:
        return f"dry run: would have run {record.action}{target}" + (
            f" ({record.message})" if record.message else ""
        )
    if record.outcome == "would_have":
        return f"would have run {record.action}{target} (mode {record.mode})"
    if record.outcome in ("skipped", "pending"):
        return f"{record.action}{target} {record.outcome}"
    text = f"{record.action}{target}: {record.outcome}"
    return f"{text} ({record.message})" if record.message else text


def build_summary(report: IncidentReport) -> str:
    """Symptom, when it began, the culprit and runner-up, what was done, whether it worked."""
    lines = [
        f"Symptom: {describe_symptom(report)}, severity {report.severity}.",
        f"Began: {_clock(report.detected_at)}.",
        *_culprit_lines(report),
    ]
    done = [describe_action(record) for record in report.actions]
    lines.append("Done: " + ("; ".join(done) if done else "nothing yet") + ".")
    if report.gitops is not None:
        lines.append(describe_gitops(report.gitops))
    lines.append("Result: " + _OUTCOME_BY_STATE.get(report.state, "Investigating."))
    return "\n".join(lines)


def culprits_of(report: IncidentReport, limit: int = 5) -> list[Culprit]:
    """The ranking, best first, each change described."""
    if report.attribution is None:
        return []
    by_id = {change.id: change for change in report.changes}
    return [
        Culprit(
            change_id=ranked.change_id,
            probability=round(ranked.probability, 4),
            change=describe_change(by_id.get(ranked.change_id), ranked),
            reasons=list(ranked.reasons),
        )
        for ranked in report.attribution.ranking[:limit]
    ]


def render_report(report: IncidentReport) -> IncidentReport:
    """The report with its words written: summary, symptom, described culprits and actions."""
    return report.model_copy(
        update={
            "summary": build_summary(report),
            "symptom": describe_symptom(report),
            "culprits": culprits_of(report),
            "done": [describe_action(record) for record in report.actions],
        }
    )
