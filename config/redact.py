"""Credentials out of what backout prints: URLs with a user:password part or a secret query
parameter, in settings (`backout config show`), timeline notes and logs.

Pure standard library, so the workflow may use it too (its timeline is printed).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "****"
# Query parameters whose value is a credential (matched case-insensitively, as a substring).
_SECRET_PARAMS = ("token", "key", "secret", "password", "passwd", "auth", "signature", "sig", "credential")
# scheme://user:password@host or scheme://token@host inside any text.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@]+)@")
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&](?:[A-Za-z0-9_.-]*(?:"
    + "|".join(_SECRET_PARAMS)
    + r")[A-Za-z0-9_.-]*))=(?P<value>[^&\s#'\"]+)",
    re.IGNORECASE,
)


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:{MASK}" if colon else MASK
    return f"{match.group('scheme')}{shown}@"


def redact_text(text: str) -> str:
    """`text` with every URL credential masked (user:password@ and secret query parameters)."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(_mask_userinfo, text)
    return _QUERY_SECRET.sub(lambda m: f"{m.group('name')}={MASK}", text)


def redact_url(url: str) -> str:
    """One URL with its credentials masked; anything that is not a URL is returned as it is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if not parts.scheme or not parts.netloc:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, MASK if any(s in k.lower() for s in _SECRET_PARAMS) else v) for k, v in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class RedactingFilter(logging.Filter):
    """Masks URL credentials in every record a handler emits (messages and formatted arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add the redacting filter to every handler of `logger` (the root logger by default), once."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
            handler.addFilter(RedactingFilter())
