"""POST /v1/slack/interactions: the Approve / Reject buttons of an incident's Slack thread.

Order of checks: the body cap (api/transport.py, `slack_max_body_bytes`, before a byte is read),
Slack's signature over the raw body and a timestamp no older than 300 s (else 401 and nothing
happens), a signature seen before is a replay (401; recorded in Temporal, so every API replica
and a restarted one know it: api/replay.py), the payload's shape (400), then the clicking Slack
user must be an approver of the pending request (api/approvers.py: the runbook's approvers, else
the owning team's), then the workflow's `approve` update decides (its validator rejects unknown,
expired and already-decided requests and checks the approver's names once more).
Slack wants an answer within 3 s: the update gets 2.5 s, after which the answer says the
decision is still being applied and the user gets the result as an ephemeral message.

Uses `request.app.state.settings` and the API's Temporal gateway (or `app.state.temporal_client`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from slack_sdk.signature import SignatureVerifier
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from activities.paging.channel import DeliveryError
from activities.paging.channels.slack import APPROVE_ACTION_ID, REJECT_ACTION_ID, SlackClient
from api.approvers import Verdict, approval_scope, judge
from api.common import ApiError, read_body
from api.replay import MAX_AGE_S, LocalReplayGuard, first_time_anywhere
from config import Settings
from incidents.models import ApprovalDecision, ChatThread

router = APIRouter()
log = logging.getLogger(__name__)

ANSWER_BUDGET_S = 2.5
_background: set[asyncio.Task[Any]] = set()


class ButtonValue(BaseModel):
    w: str = Field(max_length=300)  # workflow (incident) id
    r: str = Field(max_length=200)  # approval request id
    t: str | None = Field(default=None, max_length=200)  # owning team when the message was posted
    s: str | None = Field(default=None, max_length=300)  # service and namespace, for people reading it
    n: str | None = Field(default=None, max_length=300)
    p: str | None = Field(default=None, max_length=64)  # the plan the message showed (its plan_id)
    a: bool  # approve (True) or reject


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Action(_Lenient):
    action_id: str = ""
    value: str = ""


class _User(_Lenient):
    id: str = Field(min_length=1, max_length=64)


class _Ids(_Lenient):
    id: str | None = None


class _Message(_Lenient):
    ts: str | None = None
    thread_ts: str | None = None


class _Container(_Lenient):
    channel_id: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None


class BlockActions(_Lenient):
    """The parts of Slack's block_actions payload backout reads; anything else in it is ignored."""

    type: str
    user: _User | None = None
    actions: list[_Action] = Field(default_factory=list, max_length=25)
    channel: _Ids | None = None
    message: _Message | None = None
    container: _Container | None = None


class Click(BaseModel):
    user: str
    value: ButtonValue
    channel: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None


def _unauthorized(reason: str) -> JSONResponse:
    log.warning("slack interaction rejected: %s", reason)
    return JSONResponse({"ok": False, "error": reason}, status_code=401)


def _malformed(reason: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": "malformed_interaction", "detail": reason}, status_code=400)


def _reply(text: str, ok: bool) -> JSONResponse:
    return JSONResponse({"ok": ok, "response_type": "ephemeral", "replace_original": False, "text": text})


def _guard(request: Request) -> LocalReplayGuard:
    guard = getattr(request.app.state, "slack_replay_guard", None)
    if guard is None:
        guard = LocalReplayGuard()
        request.app.state.slack_replay_guard = guard
    return guard


def _parse_click(raw: bytes) -> Click | str:
    form = parse_qs(raw.decode("utf-8", errors="replace"))
    try:
        payload = BlockActions.model_validate_json(form.get("payload", [""])[0])
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            return "payload is not JSON"
        return "payload is not a Slack interaction backout understands"
    if payload.type != "block_actions":
        return "not a block_actions interaction"
    actions = [a for a in payload.actions if a.action_id in (APPROVE_ACTION_ID, REJECT_ACTION_ID)]
    if not actions:
        return "no backout approval action in the interaction"
    try:
        value = ButtonValue.model_validate_json(actions[0].value)
    except ValidationError:
        return "button value is not a backout approval"
    if value.a != (actions[0].action_id == APPROVE_ACTION_ID):
        return "button value does not match its action"
    if payload.user is None:
        return "interaction has no user"
    message = payload.message or _Message()
    container = payload.container or _Container()
    return Click(
        user=payload.user.id,
        value=value,
        channel=(payload.channel.id if payload.channel else None) or container.channel_id,
        message_ts=message.ts or container.message_ts,
        thread_ts=message.thread_ts or container.thread_ts,
    )


async def _temporal_client(state: Any) -> Client:
    """The API's lazily connected client (its gateway) or a client set on app.state."""
    gateway = getattr(state, "gateway", None)
    if gateway is not None:
        client: Client = await gateway.client()
        return client
    return state.temporal_client  # type: ignore[no-any-return]


async def _decide(client: Client, click: Click, verdict: Verdict) -> tuple[bool, str]:
    decision = ApprovalDecision(
        request_id=click.value.r,
        approve=click.value.a,
        user=click.user,
        source="slack",
        aliases=sorted(verdict.names - {click.user}),
        plan_id=click.value.p,
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
    timestamp = request.headers.get("x-slack-request-timestamp", "")
    signature = request.headers.get("x-slack-signature", "")
    if not timestamp.isdigit() or len(timestamp) > 12 or not signature or len(signature) > 200:
        return _unauthorized("missing or malformed Slack signature headers")
    if abs(time.time() - int(timestamp)) > MAX_AGE_S:
        return _unauthorized("stale request timestamp")
    try:
        raw = await read_body(request, settings.slack_max_body_bytes)
    except ApiError as exc:
        return JSONResponse(
            {"ok": False, "error": exc.error, "detail": exc.detail}, status_code=exc.status_code
        )
    verifier = SignatureVerifier(settings.slack_signing_secret.get_secret_value())
    if not verifier.is_valid(raw, timestamp, signature):
        return _unauthorized("invalid signature")
    if not _guard(request).first_time(signature):
        return _unauthorized("replayed request")
    try:
        client = await _temporal_client(request.app.state)
    except Exception as exc:  # the API gateway wraps every connect failure in its own error type
        return _reply(f"Nothing changed: backout cannot reach Temporal ({exc})", ok=False)
    try:
        if not await first_time_anywhere(client, settings.task_queue, signature):
            return _unauthorized("replayed request")
    except RPCError as exc:
        return _reply(
            f"Nothing changed: backout cannot record the request in Temporal ({exc.message})", ok=False
        )

    click = _parse_click(raw)
    if isinstance(click, str):
        return _malformed(click)
    try:
        scope = await approval_scope(client, click.value.w)
        verdict = await asyncio.to_thread(judge, settings, scope, click.user)
    except ApiError as exc:
        return _reply(f"Nothing changed: {exc.detail}", ok=False)
    except RPCError as exc:
        return _reply(f"Nothing changed: incident {click.value.w} is not reachable ({exc.message})", ok=False)
    if verdict.refusal is not None:
        refusal = verdict.refusal.replace(click.user, f"<@{click.user}>", 1)
        background.add_task(_tell_user, settings, click, f"Not allowed: {refusal}", False)
        return _reply(f"Not allowed: {refusal}", ok=False)

    task = asyncio.create_task(_decide(client, click, verdict))
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
