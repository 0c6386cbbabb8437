"""The API's transport limits: what one client can hold or send, before any route runs.

- Headers: at most 16 KiB (else a 400 and the connection closed), complete within
  `api_header_timeout_s` of the connection (or of the previous response), else the connection is
  closed (a slow client cannot park there). uvicorn's httptools parser (C) has neither guard of
  its own, so GuardedHttpToolsProtocol adds both; the h11 protocol (pure Python, slower) keeps
  its guarded variant for `api_http_parser: h11`.
- Bodies: a declared Content-Length over the route's cap is a 413 before a byte is kept; a
  chunked body is counted as it arrives and stopped at the cap; each read waits at most
  `api_body_timeout_s` (408). The Slack route has its own, smaller cap. Before a refusal the
  rest of a body up to DRAIN_LIMIT is read and thrown away, so the client, still sending, reads
  its 413 instead of a reset connection; a larger body is cut off.
- Concurrency: `api_max_concurrency` connections and requests at once, then 503 (Alertmanager
  retries a 503; it drops a 4xx).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from config import Settings, SettingsError

SLACK_PATH = "/v1/slack/interactions"
# Methods that carry no body in this API: anything they send beyond this is refused.
BODYLESS_LIMIT = 1024
MAX_HEADER_BYTES = 16 * 1024
# How much of a refused body is read (and discarded) so the sender gets the answer.
DRAIN_LIMIT = 8 * 1024 * 1024


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"body exceeds the limit of {limit} bytes")
        self.limit = limit


class BodyTimeout(Exception):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the body did not arrive within {timeout_s:g}s")
        self.timeout_s = timeout_s


def body_limit(settings: Settings, method: str, path: str) -> int:
    if method in ("GET", "HEAD", "DELETE", "OPTIONS"):
        return BODYLESS_LIMIT
    if path == SLACK_PATH:
        return settings.slack_max_body_bytes
    return settings.max_body_bytes


async def _drain(receive: Receive, already: int, timeout_s: float) -> None:
    """Read and discard the rest of a request body, up to DRAIN_LIMIT bytes in all."""
    seen = already
    while seen <= DRAIN_LIMIT:
        try:
            message = await asyncio.wait_for(receive(), timeout=timeout_s)
        except TimeoutError:
            return
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _send_json(send: Send, status: int, error: str, detail: str) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimits:
    """ASGI middleware: the body cap and the per-read body timeout for every route."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(self.settings, scope["method"], scope["path"])
        declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        if declared is not None:
            if not declared.isdigit():
                await _send_json(send, 400, "bad_content_length", "Content-Length must be a number of bytes")
                return
            if int(declared) > limit:
                if int(declared) <= DRAIN_LIMIT:
                    await _drain(receive, 0, self.settings.api_body_timeout_s)
                await _send_json(
                    send, 413, "payload_too_large", f"body is {int(declared)} bytes; the limit is {limit}"
                )
                return
        received = 0
        complete = False
        timeout_s = self.settings.api_body_timeout_s

        async def limited_receive() -> Message:
            nonlocal received, complete
            try:
                message = await asyncio.wait_for(receive(), timeout=timeout_s)
            except TimeoutError:
                complete = True  # nothing more will come in time: do not wait for it again
                raise BodyTimeout(timeout_s) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > limit:
                    raise BodyTooLarge(limit)
            else:
                complete = True
            return message

        async def draining_send(message: Message) -> None:
            # A response that leaves the request body unread (refused early) closes the connection
            # (else the server would go on reading whatever the client sends), and the rest of the
            # body, up to DRAIN_LIMIT, is read before the last part of the answer so the client,
            # still sending, gets to read it.
            last = message["type"] == "http.response.body" and not message.get("more_body", False)
            if message["type"] == "http.response.start" and not complete:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            elif last and not complete:
                await _drain(receive, received, timeout_s)
            await send(message)

        await self.app(scope, limited_receive, draining_send)


class HeaderDeadline:
    """A deadline for a request's headers, mixed into a uvicorn HTTP protocol (neither of uvicorn's
    has one): armed when the connection opens and after each response, cancelled when the headers
    are in (the body has its own timeout); a connection still waiting for headers then is closed."""

    header_timeout_s: float = 10.0
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and not self.transport.is_closing():
            self.transport.close()


class GuardedH11Protocol(HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol with a deadline for a request's headers (h11 caps their size)."""

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._cancel_header_timer()  # the headers are in: the body has its own timeout


class HeadersTooLarge(Exception):
    """Raised from a parser callback: httptools turns it into a parser error, uvicorn into a 400."""


class GuardedHttpToolsProtocol(HeaderDeadline, HttpToolsProtocol):
    """uvicorn's httptools protocol with the two guards h11 had: a deadline for a request's headers
    and a cap on their size (the request line and the header fields, MAX_HEADER_BYTES)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_bytes = 0
        super().connection_made(transport)

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            raise HeadersTooLarge(f"request headers exceed {MAX_HEADER_BYTES} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()  # the headers are in: the body has its own timeout
        super().on_headers_complete()


def server_config(
    app: Any, settings: Settings, host: str | None = None, port: int | None = None
) -> uvicorn.Config:
    """The uvicorn configuration every backout API process uses (`backout up|api`, the demo)."""
    guarded: type[asyncio.Protocol] = (
        GuardedH11Protocol if settings.api_http_parser == "h11" else GuardedHttpToolsProtocol
    )
    protocol = type("BackoutHttpProtocol", (guarded,), {"header_timeout_s": settings.api_header_timeout_s})
    return uvicorn.Config(
        app,
        **tls_arguments(settings),
        host=host or settings.api_host,
        port=port if port is not None else settings.api_port,
        http=protocol,
        log_level="warning",
        lifespan="off",
        timeout_keep_alive=int(max(1, settings.api_keep_alive_s)),
        limit_concurrency=settings.api_max_concurrency,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        server_header=False,
    )


def tls_arguments(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS arguments for the API (none: plain HTTP).

    With `api_tls_client_ca_file` the handshake itself requires a client certificate that CA signed
    (mutual TLS): a client without one never gets to send a request.
    """
    cert, key, client_ca = (
        settings.api_tls_cert_file,
        settings.api_tls_key_file,
        settings.api_tls_client_ca_file,
    )
    if cert is None or key is None:
        return {}
    arguments: dict[str, Any] = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    if client_ca is not None:
        arguments.update(ssl_ca_certs=str(client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return arguments


def check_tls_files(settings: Settings) -> None:
    """Load the API's certificate, key and client CA once at start, so a bad file is named by its
    setting instead of surfacing as a bare SSLError when uvicorn loads it."""
    cert, key, client_ca = (
        settings.api_tls_cert_file,
        settings.api_tls_key_file,
        settings.api_tls_client_ca_file,
    )
    if cert is None or key is None:
        return
    for name, path in (
        ("api_tls_cert_file", cert),
        ("api_tls_key_file", key),
        ("api_tls_client_ca_file", client_ca),
    ):
        if path is not None and not path.is_file():
            raise SettingsError(f"{name} {path} does not exist or is not a file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(
            f"api_tls_cert_file {cert} and api_tls_key_file {key} do not load as a PEM certificate and its "
            f"key: {exc}"
        ) from exc
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (ssl.SSLError, OSError) as exc:
            raise SettingsError(
                f"api_tls_client_ca_file {client_ca} does not load as PEM CA certificates: {exc}"
            ) from exc
