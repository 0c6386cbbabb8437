"""What a page and a chat message say: PagerDuty alert content and Slack Block Kit.

Pure functions of an IncidentReport, so what users see is testable without a server.
"""

from __future__ import annotations

import json
from typing import Any

from activities.paging.base import PagerAlert, PagerChange
from activities.paging.pagerduty import dedup_key_for
from activities.paging.summary import build_summary, describe_action, describe_change, describe_symptom
from incidents.models import ActionRecord, ApprovalRequest, IncidentReport, NotifyRequest

APPROVE_ACTION_ID = "backout_approve"
REJECT_ACTION_ID = "backout_reject"
_SECTION_LIMIT = 2900  # Slack section text is capped at 3000 characters
_HEAD_STATE: dict[str, tuple[str, str]] = {
    "open": (":mag:", "investigating"),
    "collecting": (":mag:", "investigating"),
    "attributing": (":mag:", "investigating"),
    "deciding": (":mag:", "investigating"),
    "awaiting_approval": (":raised_hand:", "awaiting approval"),
    "remediating": (":rewind:", "rolling back"),
    "verifying": (":rewind:", "rolling back (verifying)"),
    "recovered": (":white_check_mark:", "recovered"),
    "needs_human": (":rotating_light:", "needs human"),
    "shadowed": (":ghost:", "shadow mode (nothing changed)"),
    "no_action": (":information_source:", "no action"),
    "resolved_before_action": (":white_check_mark:", "resolved before action"),
}


def head_state(report: IncidentReport) -> str:
    """The head message's state word: investigating -> rolling back -> recovered / needs human."""
    return _HEAD_STATE.get(report.state, (":grey_question:", report.state))[1]


def _clip(text: str, limit: int = _SECTION_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ranked_culprits(report: IncidentReport, limit: int = 5) -> list[dict[str, Any]]:
    if report.attribution is None:
        return []
    by_id = {change.id: change for change in report.changes}
    return [
        {
            "change_id": ranked.change_id,
            "probability": round(ranked.probability, 4),
            "change": describe_change(by_id.get(ranked.change_id), ranked),
            "reasons": ranked.reasons,
        }
        for ranked in report.attribution.ranking[:limit]
    ]


def _pd_links(report: IncidentReport) -> list[dict[str, str]]:
    return [{"href": href, "text": name} for name, href in sorted(report.links.items()) if href]


def pager_alert(request: NotifyRequest) -> PagerAlert:
    report = request.report
    severity = "critical" if request.event == "needs_human" else report.severity
    prefix = "[needs human] " if request.event == "needs_human" else ""
    culprits = ranked_culprits(report, 1)
    likely = f" - likely {culprits[0]['change_id']} (p={culprits[0]['probability']:.2f})" if culprits else ""
    summary = f"{prefix}{report.title}{likely}"
    details: dict[str, Any] = {
        "incident_id": report.incident_id,
        "state": report.state,
        "summary": report.summary or build_summary(report),
        "ranked_culprits": ranked_culprits(report),
        "actions_taken": [describe_action(record) for record in report.actions],
        "links": dict(report.links),
    }
    if request.detail:
        details["reason" if request.event == "needs_human" else "detail"] = request.detail
    return PagerAlert(
        dedup_key=dedup_key_for(report.incident_id),
        summary=_clip(summary, 1024),
        source=f"{report.namespace}/{report.service}" if report.namespace else (report.service or "backout"),
        severity=severity,
        timestamp=report.detected_at.isoformat(),
        component=report.service,
        group=report.namespace,
        alert_class=report.labels.get("alertname") or report.source,
        custom_details=details,
        links=_pd_links(report),
    )


def last_rollback(report: IncidentReport) -> ActionRecord | None:
    rollbacks = [record for record in report.actions if record.action == "rollback"]
    return rollbacks[-1] if rollbacks else None


def pager_change(request: NotifyRequest) -> PagerChange:
    report = request.report
    record = last_rollback(report)
    target = record.target if record and record.target else (report.service or "unknown target")
    when = record.at if record else report.detected_at
    return PagerChange(
        summary=_clip(f"backout rolled back {target} (incident {report.incident_id})", 1024),
        source="backout",
        timestamp=when.isoformat(),
        custom_details={
            "incident_id": report.incident_id,
            "service": report.service,
            "namespace": report.namespace,
            "rollback": describe_action(record) if record else request.detail,
            "diff": (record.diff[:2000] if record else ""),
            "top_culprit": next(iter(ranked_culprits(report, 1)), None),
        },
        links=_pd_links(report),
    )


def _links_text(report: IncidentReport) -> str:
    return " · ".join(f"<{href}|{name}>" for name, href in sorted(report.links.items()) if href)


def head_blocks(report: IncidentReport) -> tuple[str, list[dict[str, Any]]]:
    """The one message per incident, edited in place as the state changes."""
    emoji, state = _HEAD_STATE.get(report.state, (":grey_question:", report.state))
    text = f"{emoji} [{state}] {report.title}"
    culprits = ranked_culprits(report, 1)
    culprit = (
        f"*Top culprit* (p={culprits[0]['probability']:.2f}): {culprits[0]['change']}\n"
        + "\n".join(f"• {reason}" for reason in culprits[0]["reasons"][:3])
        if culprits
        else "*Top culprit*: none found yet"
    )
    done = [describe_action(record) for record in report.actions]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(f"{emoji} {report.title}", 150)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*State*\n{state}"},
                {"type": "mrkdwn", "text": f"*Severity*\n{report.severity}"},
                {"type": "mrkdwn", "text": f"*Service*\n{report.service or '-'}"},
                {"type": "mrkdwn", "text": f"*Namespace*\n{report.namespace or '-'}"},
            ],
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip(f"*What broke*: {describe_symptom(report)}")},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(culprit)}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": _clip("*backout did*: " + ("; ".join(done) if done else "nothing yet")),
            },
        },
    ]
    if report.approval is not None and report.state == "awaiting_approval":
        plan = ", ".join(report.approval.proposed) or "remediate"
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _clip(
                        f"*backout wants to*: {plan} (needs approval by "
                        f"{report.approval.expires_at.strftime('%H:%M:%S UTC')}, see the thread)"
                    ),
                },
            }
        )
    links = _links_text(report)
    if links:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(links, 2000)}]})
    return text, blocks


def reply_blocks(request: NotifyRequest) -> tuple[str, list[dict[str, Any]]]:
    """A thread reply for one step of the incident."""
    report = request.report
    if request.event == "needs_human":
        text = f":rotating_light: Needs a human: {request.detail or 'backout cannot resolve this alone'}"
    elif request.event == "recovered":
        text = ":white_check_mark: Recovered. " + (request.detail or "")
    elif request.event == "rollback_performed":
        record = last_rollback(report)
        text = ":rewind: " + (f"Rolled back: {describe_action(record)}" if record else "Rollback performed")
    elif request.event == "approved":
        text = ":thumbsup: Approved. " + (request.detail or "")
    elif request.event == "rejected":
        text = ":no_entry: Rejected. " + (request.detail or "")
    else:
        text = request.detail or f"State: {head_state(report)}"
    text = text.strip()
    summary = report.summary or build_summary(report)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(summary, 2000)}]},
    ]
    return text, blocks


def button_value(report: IncidentReport, approval: ApprovalRequest, approve: bool, team: str | None) -> str:
    """What a click brings back: the workflow, the request it answers and whose approvers decide."""
    value = {
        "w": report.incident_id,
        "r": approval.request_id,
        "t": team or report.team,
        "s": report.service,
        "n": report.namespace,
        "a": approve,
    }
    return json.dumps(value, separators=(",", ":"))


def approval_blocks(request: NotifyRequest, team: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The Approve / Reject message; `team` is the owning team whose approvers may click."""
    report = request.report
    approval = report.approval
    if approval is None:
        raise ValueError("approval_requested needs report.approval")
    proposed = "; ".join(approval.proposed) or "the planned remediation"
    text = f":raised_hand: Approval needed: {proposed} (expires {approval.expires_at.isoformat()})"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text)}},
        {
            "type": "actions",
            "block_id": f"approval:{approval.request_id}"[:255],
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE_ACTION_ID,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": button_value(report, approval, True, team),
                },
                {
                    "type": "button",
                    "action_id": REJECT_ACTION_ID,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Reject"},
                    "value": button_value(report, approval, False, team),
                },
            ],
        },
    ]
    return text, blocks
