"""POST /v1/slack/interactions: the Approve / Reject buttons of an incident's Slack thread.

Order of checks: Slack's signature over the raw body and a timestamp no older than 300 s
(else 401 and nothing happens), a signature seen before is a replay (401), the clicking
user must be an approver of the team in the ownership file, then the workflow's `approve`
update decides (its validator rejects unknown, expired and already-decided requests).
Slack wants an answer within 3 s: the update gets 2.5 s, after which the answer says the
decision is still being applied and the user gets the result as an ephemeral message.

Uses `request.app.state.temporal_client` (temporalio Client) and `request.app.state.settings`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from slack_sdk.signature import SignatureVerifier
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from activities.paging.channel import DeliveryError
from activities.paging.channels.slack import APPROVE_ACTION_ID, REJECT_ACTION_ID, SlackClient
from activities.paging.owners import OwnerRequest, OwnershipError, load_ownership, resolve_owner
from config import Settings
from incidents.models import ApprovalDecision, ChatThread

router = APIRouter()
log = logging.getLogger(__name__)

MAX_AGE_S = 300
ANSWER_BUDGET_S = 2.5
_background: set[asyncio.Task[Any]] = set()


class ReplayGuard:
    """Signatures of requests already accepted, kept for twice the allowed age."""

    def __init__(self, keep_s: float = 2 * MAX_AGE_S) -> None:
        self._keep_s = keep_s
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_time(self, signature: str) -> bool:
        now = time.monotonic()
        with self._lock:
            for key in [key for key, at in self._seen.items() if now - at > self._keep_s]:
                del self._seen[key]
            if signature in self._seen:
                return False
            self._seen[signature] = now
            return True


class ButtonValue(BaseModel):
    w: str  # workflow (incident) id
    r: str  # approval request id
    t: str | None = None  # owning team when the message was posted
    s: str | None = None  # service and namespace, to find the team when t is unknown
    n: str | None = None
    a: bool  # approve (True) or reject


class Click(BaseModel):
    user: str
    value: ButtonValue
    channel: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None


def _unauthorized(reason: str) -> JSONResponse:
    log.warning("slack interaction rejected: %s", reason)
    return JSONResponse({"ok": False, "error": reason}, status_code=401)


def _reply(text: str, ok: bool) -> JSONResponse:
    return JSONResponse({"ok": ok, "response_type": "ephemeral", "replace_original": False, "text": text})


def _guard(request: Request) -> ReplayGuard:
    guard = getattr(request.app.state, "slack_replay_guard", None)
    if guard is None:
        guard = ReplayGuard()
        request.app.state.slack_replay_guard = guard
    return guard


def _parse_click(raw: bytes) -> Click | str:
    form = parse_qs(raw.decode("utf-8", errors="replace"))
    try:
        payload = json.loads(form.get("payload", [""])[0])
    except json.JSONDecodeError:
        return "payload is not JSON"
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return "not a block_actions interaction"
    actions = [
        a for a in payload.get("actions", []) if a.get("action_id") in (APPROVE_ACTION_ID, REJECT_ACTION_ID)
    ]
    if not actions:
        return "no backout approval action in the interaction"
    try:
        value = ButtonValue.model_validate_json(actions[0].get("value", ""))
    except ValidationError:
        return "button value is not a backout approval"
    if value.a != (actions[0]["action_id"] == APPROVE_ACTION_ID):
        return "button value does not match its action"
    user = (payload.get("user") or {}).get("id")
    if not user:
        return "interaction has no user"
    message = payload.get("message") or {}
    container = payload.get("container") or {}
    return Click(
        user=user,
        value=value,
        channel=(payload.get("channel") or {}).get("id") or container.get("channel_id"),
        message_ts=message.get("ts") or container.get("message_ts"),
        thread_ts=message.get("thread_ts") or container.get("thread_ts"),
    )


def may_approve(settings: Settings, value: ButtonValue, user: str) -> str | None:
    """None when `user` is an approver of the incident's team in the ownership file, else why not."""
    if settings.ownership_file is None:
        return "no ownership file is configured, so nobody may approve from Slack"
    try:
        ownership = load_ownership(settings.ownership_file)
    except OwnershipError as exc:
        return f"the ownership file cannot be read: {exc}"
    team = value.t
    if team not in ownership.teams:
        team = resolve_owner(OwnerRequest(service=value.s, namespace=value.n), ownership).team
    if not team or team not in ownership.teams:
        return f"the incident's team {value.t or team!r} is not in the ownership file"
    if user not in ownership.teams[team].approvers:
        return f"<@{user}> is not an approver for team {team}"
    return None


async def _temporal_client(state: Any) -> Client:
    """The API's lazily connected client (its gateway) or a client set on app.state."""
    gateway = getattr(state, "gateway", None)
    if gateway is not None:
        client: Client = await gateway.client()
        return client
    return state.temporal_client  # type: ignore[no-any-return]


async def _decide(state: Any, click: Click) -> tuple[bool, str]:
    try:
        client = await _temporal_client(state)
    except Exception as exc:  # the API gateway wraps every connect failure in its own error type
        return False, f"Nothing changed: backout cannot reach Temporal ({exc})"
    decision = ApprovalDecision(
        request_id=click.value.r, approve=click.value.a, user=click.user, source="slack"
    )
    handle = client.get_workflow_handle(click.value.w)
    verb = "Approved" if decision.approve else "Rejected"
    try:
        result = await handle.execute_update("approve", decision, result_type=str)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        reason = getattr(cause, "message", None) or str(cause or exc)
        return False, f"Nothing changed: {reason}"
    except RPCError as exc:
        return False, f"Nothing changed: incident {click.value.w} is not running ({exc.message})"
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        return False, f"Not confirmed: incident {click.value.w} did not answer in time; click again to retry"
    return True, f"{verb} by <@{click.user}>: {result}"


def _tell_user(settings: Settings, click: Click, text: str, applied: bool) -> None:
    """The clicking user sees the outcome; an applied decision replaces the buttons for everyone."""
    if settings.slack_token is None or not click.channel:
        return
    slack = SlackClient(settings.slack_token.get_secret_value(), settings.slack_api_url)
    try:
        if applied and click.message_ts:
            slack.update(
                ChatThread(channel=click.channel, ts=click.message_ts),
                text,
                [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
            )
        slack.post_ephemeral(click.channel, click.user, text, thread_ts=click.thread_ts)
    except DeliveryError as exc:
        log.warning("could not tell %s the approval outcome: %s", click.user, exc)


@router.post("/v1/slack/interactions")
async def slack_interactions(request: Request, background: BackgroundTasks) -> JSONResponse:
    settings: Settings = request.app.state.settings
    if settings.slack_signing_secret is None or not settings.slack_signing_secret.get_secret_value():
        return _unauthorized("slack_signing_secret is not configured")
    raw = await request.body()
    timestamp = request.headers.get("x-slack-request-timestamp", "")
    signature = request.headers.get("x-slack-signature", "")
    if not timestamp.isdigit() or not signature:
        return _unauthorized("missing or malformed Slack signature headers")
    if abs(time.time() - int(timestamp)) > MAX_AGE_S:
        return _unauthorized("stale request timestamp")
    verifier = SignatureVerifier(settings.slack_signing_secret.get_secret_value())
    if not verifier.is_valid(raw, timestamp, signature):
        return _unauthorized("invalid signature")
    if not _guard(request).first_time(signature):
        return _unauthorized("replayed request")

    click = _parse_click(raw)
    if isinstance(click, str):
        return _reply(f"Ignored: {click}", ok=False)
    refusal = await asyncio.to_thread(may_approve, settings, click.value, click.user)
    if refusal is not None:
        background.add_task(_tell_user, settings, click, f"Not allowed: {refusal}", False)
        return _reply(f"Not allowed: {refusal}", ok=False)

    task = asyncio.create_task(_decide(request.app.state, click))
    try:
        applied, text = await asyncio.wait_for(asyncio.shield(task), timeout=ANSWER_BUDGET_S)
    except TimeoutError:
        _background.add(task)
        task.add_done_callback(lambda done: _finish_late(done, settings, click))
        return _reply("Received; the decision is still being applied. You will see the result here.", ok=True)
    background.add_task(_tell_user, settings, click, text, applied)
    return _reply(text, ok=applied)


def _finish_late(task: asyncio.Task[tuple[bool, str]], settings: Settings, click: Click) -> None:
    _background.discard(task)
    if task.cancelled():
        applied, text = False, "Approval could not be applied: cancelled"
    elif task.exception() is not None:
        applied, text = False, f"Approval could not be applied: {task.exception()}"
    else:
        applied, text = task.result()
    # Runs on the event loop: hand the blocking Slack calls to a thread.
    asyncio.get_running_loop().run_in_executor(None, _tell_user, settings, click, text, applied)
