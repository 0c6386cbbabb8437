"""Slack's request signing, as Slack signs interaction requests (v0, HMAC-SHA256)."""

from __future__ import annotations

import hashlib
import hmac
import time

from tests.security.conftest import SIGNING_SECRET


def signed(
    body: str, stale: bool = False, at: int | None = None, secret: str = SIGNING_SECRET
) -> dict[str, str]:
    """Headers of a request Slack signed now (or 10 minutes ago with `stale`)."""
    timestamp = str(at if at is not None else int(time.time()) - (600 if stale else 0))
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
