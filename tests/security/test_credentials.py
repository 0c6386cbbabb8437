"""Issue 12, finding "One shared token does everything, and an empty one does nothing": on the
main of the issue `BACKOUT_API_TOKEN=""` passed the non-loopback check and let unauthenticated
writes in, and /v1/incidents, /v1/changes, /metrics, /docs and /openapi.json answered anyone.
Now each role has its own token, blank or shared tokens refuse to start, and every route but
/healthz takes its role's credential, on a real `backout api` process."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from api.app import create_app
from config import Settings
from tests.security.conftest import METRICS, OPERATOR, REPORTER, SENDER, SecureStack, bearer, start_refused
from worker.temporal_client import connect

pytestmark = [pytest.mark.temporal]


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"BACKOUT_SENDER_TOKEN": ""}, "sender_token is set but blank"),
        ({"BACKOUT_OPERATOR_TOKEN": "   "}, "operator_token is set but blank"),
        ({"BACKOUT_SLACK_SIGNING_SECRET": ""}, "slack_signing_secret is set but blank"),
        (
            {"BACKOUT_API_TOKEN": "one-token-for-everything"},
            "BACKOUT_API_TOKEN (one token for every role) is gone",
        ),
        (
            {"BACKOUT_SENDER_TOKEN": SENDER, "BACKOUT_OPERATOR_TOKEN": SENDER},
            "every role needs its own token",
        ),
        ({"BACKOUT_SENDER_TOKEN": "short"}, "shorter than 16 characters"),
        ({"BACKOUT_API_HOST": "0.0.0.0"}, "no API credential is set"),
        (
            {
                "BACKOUT_API_HOST": "0.0.0.0",
                "BACKOUT_SENDER_TOKEN": SENDER,
                "BACKOUT_ALLOW_ANONYMOUS_LOOPBACK": "true",
            },
            "allow_anonymous_loopback is only for an API on loopback",
        ),
        ({"BACKOUT_ALLOWED_NAMESPACES": ""}, "allowed_namespaces is empty"),
        ({"BACKOUT_ALLOWED_NAMESPACES": "*,prod"}, "must be the only entry"),
    ],
    ids=[
        "blank sender token",
        "blank operator token",
        "blank signing secret",
        "the shared token",
        "one token for two roles",
        "short token",
        "beyond loopback without a credential",
        "anonymous beyond loopback",
        "empty allow list",
        "wildcard with others",
    ],
)
def test_unsafe_credentials_refuse_to_start(env: dict[str, str], reason: str, tmp_path: Path) -> None:
    done = start_refused(env, tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert reason in done.stderr, done.stderr


ROUTES = [
    ("GET", "/v1/incidents", "operator"),
    ("GET", "/v1/incidents/incident-x", "operator"),
    ("GET", "/v1/changes", "operator"),
    ("POST", "/v1/incidents/incident-x/approval", "operator"),
    ("POST", "/v1/incidents/incident-x/culprit", "operator"),
    ("POST", "/v1/alerts/alertmanager", "sender"),
    ("POST", "/v1/alerts/grafana", "sender"),
    ("POST", "/v1/changes", "reporter"),
    ("GET", "/metrics", "metrics"),
]
TOKENS = {"sender": SENDER, "reporter": REPORTER, "operator": OPERATOR, "metrics": METRICS}


async def test_every_route_but_healthz_takes_its_roles_credential(secure_stack: SecureStack) -> None:
    async with secure_stack.http() as http:
        assert (await http.get("/healthz")).status_code == 200
        for method, path, role in ROUTES:
            anonymous = await http.request(method, path, json={})
            assert anonymous.status_code == 401, (method, path, anonymous.text)
            assert anonymous.json()["error"] == "unauthorized"
            assert anonymous.headers["www-authenticate"] == "Bearer"
            wrong = await http.request(method, path, json={}, headers=bearer("not-a-token-of-this-api"))
            assert wrong.status_code == 401, (method, path)
            others = [token for name, token in TOKENS.items() if name != role]
            if role == "metrics":
                others.remove(OPERATOR)  # the operator reads /metrics too
            for token in others:
                refused = await http.request(method, path, json={}, headers=bearer(token))
                assert refused.status_code == 403, (method, path, refused.text)
            allowed = await http.request(method, path, json={}, headers=bearer(TOKENS[role]))
            assert allowed.status_code not in (401, 403), (method, path, allowed.text)
        # API docs are off unless enabled.
        for path in ("/docs", "/openapi.json", "/redoc"):
            assert (await http.get(path, headers=bearer(OPERATOR))).status_code == 404


async def test_metrics_answer_the_metrics_and_the_operator_token(secure_stack: SecureStack) -> None:
    async with secure_stack.http() as http:
        for token in (METRICS, OPERATOR):
            answer = await http.get("/metrics", headers=bearer(token))
            assert answer.status_code == 200 and "backout_http_requests_total" in answer.text


def _app(settings: Settings) -> httpx.AsyncClient:
    app = create_app(settings, lambda: connect(settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://backout")


async def test_api_docs_when_enabled_take_the_operator_token(backout_settings: Settings) -> None:
    settings = backout_settings.model_copy(
        update={"api_docs": True, "operator_token": SecretStr(OPERATOR), "allow_anonymous_loopback": False}
    )
    async with _app(settings) as http:
        assert (await http.get("/openapi.json")).status_code == 401
        schema = await http.get("/openapi.json", headers=bearer(OPERATOR))
        assert schema.status_code == 200 and "/v1/alerts/alertmanager" in schema.json()["paths"]
        assert (await http.get("/docs", headers=bearer(OPERATOR))).status_code == 200


async def test_anonymous_access_only_from_loopback_and_only_when_allowed(backout_settings: Settings) -> None:
    """The demo's mode: a role without a token on a loopback API, explicitly allowed."""
    allowed = backout_settings.model_copy(
        update={"allow_anonymous_loopback": True, "incident_settle_s": 60.0}
    )
    closed = backout_settings.model_copy(update={"allow_anonymous_loopback": False})
    async with _app(allowed) as http:
        assert (await http.get("/v1/incidents")).status_code == 200
    async with _app(closed) as http:
        assert (await http.get("/v1/incidents")).status_code == 401
    remote = httpx.ASGITransport(
        app=create_app(allowed, lambda: connect(allowed)), client=("10.1.2.3", 40000)
    )
    async with httpx.AsyncClient(transport=remote, base_url="http://backout") as http:
        assert (await http.get("/v1/incidents")).status_code == 401
    beyond = allowed.model_copy(update={"api_host": "0.0.0.0"})
    async with _app(beyond) as http:
        assert (await http.get("/v1/incidents")).status_code == 401
