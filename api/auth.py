"""Who is calling: one bearer token per role, checked before a route reads its body.

Roles (README "Security"): `sender` (alert sources), `reporter` (CI/CD reporting changes),
`operator` (reads, approvals, culprit labels) and `metrics` (GET /metrics; the operator token
reads it too). A role without a configured token is closed, unless the API runs on loopback
with `allow_anonymous_loopback` and the request comes from loopback (the local demo). A token of
another role is a 403 naming the role it belongs to; no or an unknown token is a 401.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from api.common import ApiError, services
from config import Settings
from config.settings import ROLE_TOKENS

ANONYMOUS = "anonymous-loopback"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the role its credential has and the identity it acts as."""

    role: str
    identity: str
    anonymous: bool = False


def identity_of(settings: Settings, role: str) -> str:
    if role == "operator":
        return settings.operator_identity
    if role == "reporter":
        return settings.reporter_identity
    return role


def is_loopback_host(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_loopback_peer(request: Request) -> bool:
    return is_loopback_host(request.client.host if request.client else "")


def _presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(401, "unauthorized", "the Authorization header must be 'Bearer <token>'", _challenge())
    return given.strip()


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": "Bearer"}


def authenticate(request: Request, settings: Settings, roles: tuple[str, ...]) -> Caller:
    """The caller if its token is one of `roles`' (or anonymous loopback is allowed); else 401/403."""
    given = _presented_token(request)
    if given is not None:
        for role in ROLE_TOKENS:
            token = settings.role_token(role)
            if token is not None and hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
                if role not in roles:
                    raise ApiError(
                        403,
                        "forbidden",
                        f"the {role} credential may not call {request.method} {request.url.path} "
                        f"(it takes the {' or '.join(roles)} credential)",
                    )
                return Caller(role=role, identity=identity_of(settings, role))
        raise ApiError(401, "unauthorized", "unknown bearer token", _challenge())
    open_roles = [role for role in roles if settings.role_token(role) is None]
    if (
        settings.allow_anonymous_loopback
        and open_roles
        and is_loopback_host(settings.api_host)
        and _is_loopback_peer(request)
    ):
        role = open_roles[0]
        return Caller(role=role, identity=identity_of(settings, role), anonymous=True)
    raise ApiError(
        401,
        "unauthorized",
        f"missing bearer token: {request.method} {request.url.path} takes the {' or '.join(roles)} token",
        _challenge(),
    )


def requires(*roles: str) -> Callable[[Request], Awaitable[Caller]]:
    """A FastAPI dependency: the route runs only for a caller holding one of `roles`' credentials."""
    unknown = set(roles) - set(ROLE_TOKENS)
    if unknown:
        raise ValueError(f"unknown role(s): {', '.join(sorted(unknown))}")

    async def dependency(request: Request) -> Caller:
        caller = authenticate(request, services(request).settings, roles)
        request.state.caller = caller
        return caller

    return dependency
