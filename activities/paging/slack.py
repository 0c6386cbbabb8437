"""Slack Web API through slack-sdk's WebClient: post, reply in thread, edit in place."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from activities.paging.base import ChatNotifier, DeliveryError
from incidents.models import ChatThread

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


class SlackNotifier(ChatNotifier):
    name = "slack"

    def __init__(self, token: str, base_url: str) -> None:
        if not base_url.endswith("/"):
            base_url += "/"
        self._client = WebClient(token=token, base_url=base_url, timeout=_REQUEST_TIMEOUT_S)
        self._client.retry_handlers.append(
            BoundedRateLimitHandler(max_retry_count=_RATE_LIMIT_RETRIES, max_wait_s=_MAX_RETRY_AFTER_S)
        )
        self._client.retry_handlers.append(ConnectionErrorRetryHandler(max_retry_count=1))

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        try:
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
