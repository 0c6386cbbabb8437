"""The header guards of api/transport.py with either HTTP parser: a deadline for the headers and a
16 KiB cap on them. httptools has neither guard of its own; h11 had the cap built in. Each case runs
a real uvicorn server (server_config) on a free port in this process, over a bare socket."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from api.transport import MAX_HEADER_BYTES, GuardedH11Protocol, GuardedHttpToolsProtocol, server_config
from config import Settings
from tests.security.conftest import read_until_closed
from worker.temporal_server import free_port

HEADER_TIMEOUT_S = 0.5


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(params=["httptools", "h11"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, str]]:
    port = free_port()
    settings = Settings(
        state_dir=tmp_path, api_header_timeout_s=HEADER_TIMEOUT_S, api_http_parser=request.param
    )
    config = server_config(_ok, settings, host="127.0.0.1", port=port)
    guarded = GuardedHttpToolsProtocol if request.param == "httptools" else GuardedH11Protocol
    assert isinstance(config.http, type) and issubclass(config.http, guarded)
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(uvicorn_server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uvicorn_server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield port, request.param
    uvicorn_server.should_exit = True
    thread.join(timeout=10)


def _exchange(port: int, data: bytes, rest: bytes = b"") -> bytes:
    """Send `data` (and `rest` a moment later), then read until the server closes the connection
    (or 10 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            if rest:
                time.sleep(0.2)
                sock.sendall(rest)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_closed(sock)


def test_a_request_within_the_limits_is_served_and_its_connection_kept(server: tuple[int, str]) -> None:
    port, _ = server
    request = b"GET / HTTP/1.1\r\nHost: backout\r\nX-Pad: " + b"a" * (MAX_HEADER_BYTES // 2) + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for _ in range(2):  # twice on one connection: the deadline is armed again after a response
            sock.sendall(request)
            answer = b""
            while not answer.endswith(b"\r\n\r\nok"):
                chunk = sock.recv(65536)
                assert chunk, f"closed after {answer[:200]!r}"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_headers_that_never_end_are_cut_off_at_the_deadline(server: tuple[int, str]) -> None:
    port, _ = server
    started = time.monotonic()
    answer = _exchange(port, b"POST / HTTP/1.1\r\nHost: backout\r\nContent-Type: appl")
    assert answer == b""
    assert time.monotonic() - started < 5  # closed at the deadline, long before the socket's own timeout


def test_headers_over_the_cap_are_refused_before_they_end(server: tuple[int, str]) -> None:
    port, _ = server
    padding = b"X-Pad: " + b"a" * 1000 + b"\r\n"
    headers = b"GET / HTTP/1.1\r\nHost: backout\r\n" + padding * (MAX_HEADER_BYTES // 1000 + 2)
    answer = _exchange(port, headers, rest=b"\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
