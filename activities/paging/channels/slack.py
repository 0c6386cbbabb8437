"""Slack: one thread per incident, its head message edited in place as the state changes, a reply
per step, Approve / Reject buttons when a runbook asks for approval (Web API through slack-sdk).
It is chat, not a pager: shadow-mode runbooks report here only.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from temporalio.exceptions import ApplicationError

from activities.paging.channel import DeliveryError, PagingChannel, delivery_failure, joined
from incidents.models import ApprovalRequest, ChatThread, IncidentReport, NotifyRequest, NotifyResult

# --- What a message says ---------------------------------------------------------------------

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


def escape(text: str) -> str:
    """Text from senders and reporters (alert names, change descriptions, details) as Slack shows
    it, never as markup: `<!channel>` stays words and `<http://x|y>` no link (Slack's escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _links_text(report: IncidentReport) -> str:
    return " · ".join(f"<{href}|{name}>" for name, href in sorted(report.links.items()) if href)


def head_blocks(report: IncidentReport) -> tuple[str, list[dict[str, Any]]]:
    """The one message per incident, edited in place as the state changes."""
    emoji, state = _HEAD_STATE.get(report.state, (":grey_question:", report.state))
    text = f"{emoji} [{state}] {escape(report.title)}"
    top = report.culprits[0] if report.culprits else None
    culprit = (
        f"*Top culprit* (p={top.probability:.2f}): {escape(top.change)}\n"
        + "\n".join(f"• {escape(reason)}" for reason in top.reasons[:3])
        if top
        else "*Top culprit*: none found yet"
    )
    done = [escape(item) for item in report.done]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(f"{emoji} {report.title}", 150)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*State*\n{state}"},
                {"type": "mrkdwn", "text": f"*Severity*\n{report.severity}"},
                {"type": "mrkdwn", "text": f"*Service*\n{escape(report.service or '-')}"},
                {"type": "mrkdwn", "text": f"*Namespace*\n{escape(report.namespace or '-')}"},
            ],
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip(f"*What broke*: {escape(report.symptom)}")},
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
    detail = escape(request.detail) if request.detail else None
    if request.event == "needs_human":
        text = f":rotating_light: Needs a human: {detail or 'backout cannot resolve this alone'}"
    elif request.event == "recovered":
        text = ":white_check_mark: Recovered. " + (detail or "")
    elif request.event == "rollback_performed":
        rollback = report.last_rollback()
        text = ":rewind: " + (f"Rolled back: {escape(rollback[1])}" if rollback else "Rollback performed")
    elif request.event == "approved":
        text = ":thumbsup: Approved. " + (detail or "")
    elif request.event == "rejected":
        text = ":no_entry: Rejected. " + (detail or "")
    else:
        text = detail or f"State: {head_state(report)}"
    text = text.strip()
    summary = escape(report.summary)
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
    if approval.plan_id:
        value["p"] = approval.plan_id  # the click approves this plan only
    return json.dumps(value, separators=(",", ":"))


def _revert_blocks(approval: ApprovalRequest) -> list[dict[str, Any]]:
    """A GitOps-managed rollback: the commit it reverts and the exact diff it would push."""
    revert = approval.revert
    if revert is None:
        return []
    # Commit messages and diffs come from whoever pushed to the repository: words, never markup.
    said = (
        f"*In Git*: {escape(revert.describe())}\n*Repository*: {escape(revert.repository)}, "
        f"revert to {escape(revert.target)}"
        + (f" (commit {escape(revert.revert_sha[:12])})" if revert.revert_sha else "")
    )
    diff = escape(revert.diff if len(revert.diff) <= 2500 else revert.diff[:2500] + "\n... (cut)")
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(said)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"```{diff or '(no diff)'}```")}},
    ]


def approval_blocks(request: NotifyRequest, team: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The Approve / Reject message; `team` is the owning team whose approvers may click."""
    report = request.report
    approval = report.approval
    if approval is None:
        raise ValueError("approval_requested needs report.approval")
    planned = [change.describe() for change in approval.plan] or approval.proposed
    proposed = escape("; ".join(planned)) or "the planned remediation"
    text = f":raised_hand: Approval needed: {proposed} (expires {approval.expires_at.isoformat()})"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text)}},
        *_revert_blocks(approval),
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


# --- The Web API client ---------------------------------------------------------------------------

_RATE_LIMIT_RETRIES = 3
_MAX_RETRY_AFTER_S = 5  # keep every wait well inside the notify activity's 30 s start-to-close
_REQUEST_TIMEOUT_S = 10
# Errors that will not go away by themselves: do not let Temporal retry them.
_PERMANENT_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "invalid_arguments",
        "msg_too_long",
        "no_text",
        "message_not_found",
        "cant_update_message",
        "missing_scope",
        "user_not_in_channel",
    }
)


def _api_error(exc: SlackApiError, method: str) -> DeliveryError:
    status = exc.response.status_code
    error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
    retryable = status == 429 or status >= 500 or (error is not None and error not in _PERMANENT_ERRORS)
    return DeliveryError(
        "slack", f"{method} failed: {error or f'HTTP {status}'}", retryable=retryable, status=status
    )


class BoundedRateLimitHandler(RateLimitErrorRetryHandler):
    """Waits out a 429's Retry-After only when it is short.

    A long wait would outlive the activity's start-to-close timeout while the blocking
    thread keeps going, and a late post after Temporal's retry would duplicate a message.
    Longer waits fail the attempt instead; Temporal retries it with backoff.
    """

    def __init__(self, max_retry_count: int, max_wait_s: int) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_s = max_wait_s

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        retry_after = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), ["1"])
        try:
            return int(retry_after[0]) <= self.max_wait_s
        except (ValueError, IndexError):
            return False


class SlackClient:
    """The Web API calls backout makes: post (or reply in a thread), edit in place, ephemeral."""

    def __init__(self, token: str, base_url: str) -> None:
        if not base_url.endswith("/"):
            base_url += "/"
        self._client = WebClient(token=token, base_url=base_url, timeout=_REQUEST_TIMEOUT_S)
        self._client.retry_handlers.append(
            BoundedRateLimitHandler(max_retry_count=_RATE_LIMIT_RETRIES, max_wait_s=_MAX_RETRY_AFTER_S)
        )
        self._client.retry_handlers.append(ConnectionErrorRetryHandler(max_retry_count=1))

    def _call(self, method: str, *, read: bool = False, **kwargs: Any) -> dict[str, Any]:
        try:
            if read:  # Slack's read methods take query parameters, not a JSON body
                response = self._client.api_call(method, http_verb="GET", params=kwargs)
            else:
                response = self._client.api_call(method, json=kwargs)
        except SlackApiError as exc:
            raise _api_error(exc, method) from exc
        except (SlackClientError, OSError) as exc:
            raise DeliveryError("slack", f"{method} failed: {exc}", retryable=True) from exc
        data = response.data
        if not isinstance(data, dict):
            raise DeliveryError("slack", f"{method}: response is not a JSON object", retryable=True)
        return data

    def post(
        self, channel: str, text: str, blocks: list[dict[str, Any]], thread_ts: str | None = None
    ) -> ChatThread:
        arguments: dict[str, Any] = {"channel": channel, "text": text, "blocks": blocks}
        if thread_ts:
            arguments["thread_ts"] = thread_ts
        data = self._call("chat.postMessage", **arguments)
        ts = data.get("ts")
        if not isinstance(ts, str) or not ts:
            raise DeliveryError("slack", "chat.postMessage answered without a ts", retryable=True)
        # Slack answers with the channel id even when posted by name: keep the id for edits.
        landed = data.get("channel")
        return ChatThread(channel=landed if isinstance(landed, str) and landed else channel, ts=ts)

    def update(self, message: ChatThread, text: str, blocks: list[dict[str, Any]]) -> None:
        self._call("chat.update", channel=message.channel, ts=message.ts, text=text, blocks=blocks)

    def post_ephemeral(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> None:
        arguments: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if thread_ts:
            arguments["thread_ts"] = thread_ts
        self._call("chat.postEphemeral", **arguments)

    def user_email(self, user: str) -> str | None:
        """The user's email (users.info, scope users:read.email), if Slack shares it."""
        profile = (self._call("users.info", read=True, user=user).get("user") or {}).get("profile") or {}
        email = profile.get("email") if isinstance(profile, dict) else None
        return email if isinstance(email, str) and email else None

    def group_members(self, group: str) -> set[str]:
        """The user ids of a Slack user group (usergroups.users.list, scope usergroups:read)."""
        users = self._call("usergroups.users.list", read=True, usergroup=group).get("users") or []
        return {user for user in users if isinstance(user, str)}


# --- The channel ---------------------------------------------------------------------------------


class SlackChannel(PagingChannel):
    name: ClassVar[str] = "slack"
    title: ClassVar[str] = "Slack"
    position: ClassVar[int] = 20

    def send(self, request: NotifyRequest) -> NotifyResult:
        settings = self.settings
        if settings.slack_token is None or not settings.slack_token.get_secret_value():
            return NotifyResult(
                channel=self.name,
                outcome="Inconclusive",
                message="Slack not configured (no token): nothing sent",
                sent=False,
            )
        thread = request.thread
        owner, note = self.owners.for_report(request.report)
        channel = thread.channel if thread else (owner.slack_channel or settings.slack_channel)
        if not channel:
            return NotifyResult(
                channel=self.name,
                outcome="Inconclusive",
                message="no Slack channel for the team or in settings: nothing sent",
                sent=False,
            )
        slack = SlackClient(settings.slack_token.get_secret_value(), settings.slack_api_url)
        try:
            if request.chat_channel:
                # A runbook's notify step that names a channel: a message there, outside the thread.
                text, blocks = reply_blocks(request)
                slack.post(request.chat_channel, text, blocks)
                return NotifyResult(
                    channel=self.name,
                    outcome="Successful",
                    message=joined(f"{request.event} posted in {request.chat_channel}", note),
                    thread=thread,
                )
            thread, posted_head = self._ensure_head(slack, channel, request)
            if request.event == "opened":
                return NotifyResult(
                    channel=self.name,
                    outcome="Successful",
                    message=joined("head message posted" if posted_head else "head message updated", note),
                    thread=thread,
                )
            # Edit first: the edit is idempotent, the reply is not, so a retry never duplicates it.
            if not posted_head:
                text, blocks = head_blocks(request.report)
                slack.update(thread, text, blocks)
            if request.event == "approval_requested":
                text, blocks = approval_blocks(request, owner.team)
            else:
                text, blocks = reply_blocks(request)
            slack.post(thread.channel, text, blocks, thread_ts=thread.ts)
        except DeliveryError as exc:
            raise delivery_failure(exc) from exc
        except ValueError as exc:
            raise ApplicationError(str(exc), type="NotifyRejected", non_retryable=True) from exc
        return NotifyResult(
            channel=self.name,
            outcome="Successful",
            message=joined(f"{request.event} posted in thread", note),
            thread=thread,
        )

    @staticmethod
    def _ensure_head(slack: SlackClient, channel: str, request: NotifyRequest) -> tuple[ChatThread, bool]:
        text, blocks = head_blocks(request.report)
        if request.thread is None:
            return slack.post(channel, text, blocks), True
        if request.event == "opened":
            slack.update(request.thread, text, blocks)
        return request.thread, False

    @classmethod
    def failure_note(cls, request: NotifyRequest, failed: str, error: str) -> NotifyRequest | None:
        # A reply in the incident's thread, once there is one.
        if request.thread is None:
            return None
        return NotifyRequest(
            event="update",
            report=request.report,
            thread=request.thread,
            detail=f":warning: {failed} {request.event} was NOT delivered: {error}",
        )
