"""A local stand-in for the Slack Web API: chat.postMessage, chat.update, chat.postEphemeral, auth.test,
and the reads an approval check makes: users.info (a user's email) and usergroups.users.list.

Checks the bearer token and the documented fields (channel, text or blocks, thread_ts of an
existing message, Block Kit size limits), records every call and every message, and can be
told to answer 429 with Retry-After or 5xx.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import JSONResponse

from devstack.receivers.server import LocalApi

_KNOWN_BLOCKS = frozenset(
    {"section", "header", "context", "actions", "divider", "image", "rich_text", "input"}
)
_TEXT_LIMITS = {"header": 150, "section": 3000}
_MAX_BLOCKS = 50


@dataclass
class SlackCall:
    method: str
    arguments: dict[str, Any]
    ok: bool
    error: str | None = None


@dataclass
class SlackMessage:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    edits: list[str] = field(default_factory=list)


def block_problem(blocks: Any) -> str | None:
    """The first Block Kit rule the blocks break, or None."""
    if not isinstance(blocks, list) or len(blocks) > _MAX_BLOCKS:
        return f"blocks must be a list of at most {_MAX_BLOCKS}"
    for index, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") not in _KNOWN_BLOCKS:
            return f"blocks[{index}]: unknown block type"
        text = block.get("text")
        limit = _TEXT_LIMITS.get(block["type"])
        if limit and isinstance(text, dict) and len(str(text.get("text", ""))) > limit:
            return f"blocks[{index}]: text longer than {limit}"
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if len(str(element.get("value", ""))) > 2000 or len(str(element.get("action_id", ""))) > 255:
                return f"blocks[{index}]: button value or action_id too long"
    return None


class SlackReceiver(LocalApi):
    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.calls: list[SlackCall] = []
        self.messages: dict[tuple[str, str], SlackMessage] = {}
        self.ephemeral: list[dict[str, Any]] = []
        self._channel_ids: dict[str, str] = {}
        self._clock = 1_700_000_000
        # Who is who, for users.info and usergroups.users.list: set by a test or the demo.
        self.user_emails: dict[str, str] = {}
        self.user_groups: dict[str, list[str]] = {}
        self.app.post("/api/{method}")(self._dispatch)
        self.app.get("/api/{method}")(self._dispatch)

    def _forget_records(self) -> None:
        self.calls.clear()
        self.messages.clear()
        self.ephemeral.clear()

    def channel_id(self, channel: str) -> str:
        """Slack answers with channel ids: names map to a stable fake id."""
        if channel.startswith(("C", "G", "D")) and channel.isupper():
            return channel
        name = channel.lstrip("#")
        return self._channel_ids.setdefault(name, "C" + hashlib.sha1(name.encode()).hexdigest()[:9].upper())

    def calls_of(self, method: str) -> list[SlackCall]:
        with self._lock:
            return [call for call in self.calls if call.method == method and call.ok]

    def thread(self, channel: str, ts: str) -> list[SlackMessage]:
        with self._lock:
            return [m for m in self.messages.values() if m.channel == channel and m.thread_ts == ts]

    def heads(self) -> list[SlackMessage]:
        with self._lock:
            return [m for m in self.messages.values() if m.thread_ts is None]

    async def _dispatch(self, method: str, request: Request) -> JSONResponse:
        fault = self._attempt()
        if fault is not None:
            return JSONResponse(
                {"ok": False, "error": "ratelimited" if fault[0] == 429 else "fatal_error"},
                fault[0],
                headers=fault[1],
            )
        raw = await request.body()
        if request.method == "GET":
            arguments: dict[str, Any] = dict(request.query_params)
        elif request.headers.get("content-type", "").startswith("application/json"):
            try:
                arguments = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return self._answer(method, {}, error="invalid_json")
        else:
            arguments = dict(parse_qsl(raw.decode("utf-8")))
            if isinstance(arguments.get("blocks"), str):
                arguments["blocks"] = json.loads(arguments["blocks"])
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return self._answer(method, arguments, error="invalid_auth")
        handler = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "users.info": self._users_info,
            "usergroups.users.list": self._group_users,
        }.get(method)
        if handler is None:
            return self._answer(method, arguments, error="unknown_method")
        with self._lock:
            return handler(method, arguments)

    def _answer(
        self, method: str, arguments: dict[str, Any], error: str | None = None, **extra: Any
    ) -> JSONResponse:
        self.calls.append(SlackCall(method, arguments, ok=error is None, error=error))
        body: dict[str, Any] = {"ok": error is None, **extra}
        if error:
            body["error"] = error
        return JSONResponse(body)

    def _users_info(self, method: str, arguments: dict[str, Any]) -> JSONResponse:
        user = str(arguments.get("user", ""))
        if not user:
            return self._answer(method, arguments, error="user_not_found")
        profile = {"email": self.user_emails[user]} if user in self.user_emails else {}
        return self._answer(method, arguments, user={"id": user, "profile": profile})

    def _group_users(self, method: str, arguments: dict[str, Any]) -> JSONResponse:
        group = str(arguments.get("usergroup", ""))
        if group not in self.user_groups:
            return self._answer(method, arguments, error="no_such_subteam")
        return self._answer(method, arguments, users=list(self.user_groups[group]))

    def _auth_test(self, method: str, arguments: dict[str, Any]) -> JSONResponse:
        return self._answer(method, arguments, user_id="UBACKOUT", team="local", url="http://127.0.0.1/")

    def _content_problem(self, arguments: dict[str, Any]) -> str | None:
        if not arguments.get("channel"):
            return "channel_not_found"
        if not arguments.get("text") and not arguments.get("blocks"):
            return "no_text"
        if "blocks" in arguments and block_problem(arguments["blocks"]):
            return "invalid_blocks"
        return None

    def _next_ts(self) -> str:
        self._clock += 1
        return f"{self._clock}.{len(self.messages) + 1:06d}"

    def _post_message(self, method: str, arguments: dict[str, Any]) -> JSONResponse:
        problem = self._content_problem(arguments)
        if problem:
            return self._answer(method, arguments, error=problem)
        channel = self.channel_id(str(arguments["channel"]))
        thread_ts = arguments.get("thread_ts")
        if thread_ts and (channel, thread_ts) not in self.messages:
            return self._answer(method, arguments, error="thread_not_found")
        ts = self._next_ts()
        self.messages[(channel, ts)] = SlackMessage(
            channel, ts, str(arguments.get("text", "")), list(arguments.get("blocks", [])), thread_ts
        )
        return self._answer(
            method, arguments, channel=channel, ts=ts, message={"text": arguments.get("text", "")}
        )

    def _update(self, method: str, arguments: dict[str, Any]) -> JSONResponse:
        problem = self._content_problem(arguments)
        if problem:
            return self._answer(method, arguments, error=problem)
        key = (self.channel_id(str(arguments["channel"])), str(arguments.get("ts", "")))
        message = self.messages.get(key)
        if message is None:
            return self._answer(method, arguments, error="message_not_found")
        message.edits.append(message.text)
        message.text = str(arguments.get("text", ""))
        message.blocks = list(arguments.get("blocks", []))
        return self._answer(method, arguments, channel=key[0], ts=key[1], text=message.text)

    def _post_ephemeral(self, method: str, arguments: dict[str, Any]) -> JSONResponse:
        if not arguments.get("user"):
            return self._answer(method, arguments, error="user_not_in_channel")
        problem = self._content_problem(arguments)
        if problem:
            return self._answer(method, arguments, error=problem)
        self.ephemeral.append(dict(arguments))
        return self._answer(method, arguments, message_ts=self._next_ts())
