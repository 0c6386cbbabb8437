"""Acceptance: every body of a malformed-webhook corpus gets a 4xx with a JSON reason from a real
API process on a real Temporal; no 5xx, no dropped connection (issue 12, "Malformed webhooks" and
"Other 5xx and exhaustion").

Alertmanager retries a 5xx for ever and drops a 4xx: a bad sender must get a 4xx that says why.
Each case is (name, route, content type, body, the status wanted). On the main of issue 12, the
5,000-level nested array, 1e300/Infinity timestamps, since_s=99999999999999 and odd Slack payloads
answered 500, and `startsAt: 12` and `truncatedAlerts: -1` were accepted.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.pipeline.payloads import alert, notification
from tests.security.conftest import OPERATOR, REPORTER, SENDER, SecureStack, bearer
from tests.security.slack import signed

pytestmark = [pytest.mark.temporal]

AM = "/v1/alerts/alertmanager"
GRAFANA = "/v1/alerts/grafana"
CHANGES = "/v1/changes"
APPROVAL = "/v1/incidents/incident-prod-rag-api-0000000000000000/approval"
CULPRIT = "/v1/incidents/incident-prod-rag-api-0000000000000000/culprit"
SLACK = "/v1/slack/interactions"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def _dump(value: Any) -> bytes:
    return json.dumps(value).encode()


def _am(**changes: Any) -> bytes:
    body = notification([alert()])
    body.update(changes)
    return _dump(body)


def _am_alert(**changes: Any) -> bytes:
    fired = alert()
    fired.update(changes)
    return _dump(notification([fired]))


def _am_without(field: str) -> bytes:
    return _dump({k: v for k, v in notification([alert()]).items() if k != field})


def _grafana(**changes: Any) -> bytes:
    body = notification([alert()], version="1", orgId=1, title="t", state="alerting", message="m")
    body.update(changes)
    return _dump(body)


def _change(**changes: Any) -> bytes:
    from datetime import UTC, datetime, timedelta

    body: dict[str, Any] = {
        "id": "deploy-4711",
        "service": "rag-api",
        "namespace": "prod",
        "kind": "image",
        "started_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
    }
    body.update(changes)
    return _dump({k: v for k, v in body.items() if v is not ...})


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _click(payload: Any) -> bytes:
    return urlencode({"payload": payload if isinstance(payload, str) else json.dumps(payload)}).encode()


_VALUE = json.dumps({"w": "incident-x", "r": "req-1", "a": True})

# (name, method, path, content type, body, token, expected status)
CASES: list[tuple[str, str, str, str | None, bytes, str | None, int]] = [
    # --- Alertmanager -----------------------------------------------------------------------
    ("am not json", "POST", AM, JSON, b"{not json", SENDER, 400),
    ("am empty body", "POST", AM, JSON, b"", SENDER, 400),
    ("am array body", "POST", AM, JSON, b"[]", SENDER, 422),
    ("am string body", "POST", AM, JSON, b'"x"', SENDER, 422),
    ("am null body", "POST", AM, JSON, b"null", SENDER, 422),
    ("am number body", "POST", AM, JSON, b"12", SENDER, 422),
    ("am version 3", "POST", AM, JSON, _am(version="3"), SENDER, 422),
    ("am version missing", "POST", AM, JSON, _am_without("version"), SENDER, 422),
    ("am version as number", "POST", AM, JSON, _am(version=4), SENDER, 422),
    ("am groupKey missing", "POST", AM, JSON, _am_without("groupKey"), SENDER, 422),
    ("am groupKey empty", "POST", AM, JSON, _am(groupKey=""), SENDER, 422),
    ("am groupKey 2000 chars", "POST", AM, JSON, _am(groupKey="g" * 2000), SENDER, 422),
    ("am status burning", "POST", AM, JSON, _am(status="burning"), SENDER, 422),
    ("am status missing", "POST", AM, JSON, _am_without("status"), SENDER, 422),
    ("am alerts not a list", "POST", AM, JSON, _am(alerts="x"), SENDER, 422),
    ("am alerts empty", "POST", AM, JSON, _am(alerts=[]), SENDER, 422),
    ("am commonLabels a list", "POST", AM, JSON, _am(commonLabels=["a"]), SENDER, 422),
    ("am externalURL 5000 chars", "POST", AM, JSON, _am(externalURL="http://x/" + "a" * 5000), SENDER, 422),
    ("am truncatedAlerts -1", "POST", AM, JSON, _am(truncatedAlerts=-1), SENDER, 422),
    ("am truncatedAlerts text", "POST", AM, JSON, _am(truncatedAlerts="many"), SENDER, 422),
    ("am truncatedAlerts 1e300", "POST", AM, JSON, _am(truncatedAlerts=1e300), SENDER, 422),
    ("am alert labels empty", "POST", AM, JSON, _am_alert(labels={}), SENDER, 422),
    ("am alert label value a number", "POST", AM, JSON, _am_alert(labels={"alertname": 5}), SENDER, 422),
    ("am alert label value an object", "POST", AM, JSON, _am_alert(labels={"a": {"b": "c"}}), SENDER, 422),
    ("am alert annotation value a list", "POST", AM, JSON, _am_alert(annotations={"a": ["b"]}), SENDER, 422),
    (
        "am alert status missing",
        "POST",
        AM,
        JSON,
        _dump(notification([{**alert(), "status": None}])),
        SENDER,
        422,
    ),
    ("am alert fingerprint a number", "POST", AM, JSON, _am_alert(fingerprint=7), SENDER, 422),
    ("am alert generatorURL an object", "POST", AM, JSON, _am_alert(generatorURL={"a": 1}), SENDER, 422),
    ("am startsAt yesterday", "POST", AM, JSON, _am_alert(startsAt="yesterday"), SENDER, 422),
    ("am startsAt 12", "POST", AM, JSON, _am_alert(startsAt=12), SENDER, 422),
    ("am startsAt 1e12", "POST", AM, JSON, _am_alert(startsAt=1e12), SENDER, 422),
    ("am startsAt 1970", "POST", AM, JSON, _am_alert(startsAt="1970-01-01T00:00:12Z"), SENDER, 422),
    ("am startsAt year 2999", "POST", AM, JSON, _am_alert(startsAt="2999-01-01T00:00:00Z"), SENDER, 422),
    ("am startsAt without offset", "POST", AM, JSON, _am_alert(startsAt="2026-11-27T10:00:00"), SENDER, 422),
    (
        "am startsAt overflowing",
        "POST",
        AM,
        JSON,
        _am_alert(startsAt="0001-01-01T00:00:00+14:00"),
        SENDER,
        422,
    ),
    ("am endsAt a number", "POST", AM, JSON, _am_alert(endsAt=5), SENDER, 422),
    ("am 5000-level nested array", "POST", AM, JSON, _nested(5000), SENDER, 400),
    (
        "am 40-level object in an extra field",
        "POST",
        AM,
        JSON,
        _am(extra=json.loads('{"a":' * 40 + "1" + "}" * 40)),
        SENDER,
        400,
    ),
    ("am NaN", "POST", AM, JSON, b'{"version": "4", "truncatedAlerts": NaN}', SENDER, 400),
    ("am Infinity", "POST", AM, JSON, b'{"version": "4", "truncatedAlerts": Infinity}', SENDER, 400),
    ("am 1e999", "POST", AM, JSON, b'{"version": "4", "truncatedAlerts": 1e999}', SENDER, 400),
    (
        "am 5000-digit integer",
        "POST",
        AM,
        JSON,
        b'{"version": "4", "truncatedAlerts": ' + b"9" * 5000 + b"}",
        SENDER,
        400,
    ),
    ("am invalid UTF-8", "POST", AM, JSON, b'{"version": "\xff\xfe"}', SENDER, 400),
    ("am text/plain", "POST", AM, "text/plain", _am(), SENDER, 415),
    ("am no content type", "POST", AM, None, _am(), SENDER, 415),
    ("am over the body cap", "POST", AM, JSON, b" " * (1024 * 1024 + 1), SENDER, 413),
    (
        "am namespace outside the allow list",
        "POST",
        AM,
        JSON,
        _dump(notification([alert(namespace="kube-system")])),
        SENDER,
        403,
    ),
    ("am without a token", "POST", AM, JSON, _am(), None, 401),
    ("am with the operator token", "POST", AM, JSON, _am(), OPERATOR, 403),
    # --- Grafana ----------------------------------------------------------------------------
    ("grafana version 2", "POST", GRAFANA, JSON, _grafana(version="2"), SENDER, 422),
    ("grafana orgId -1", "POST", GRAFANA, JSON, _grafana(orgId=-1), SENDER, 422),
    ("grafana orgId text", "POST", GRAFANA, JSON, _grafana(orgId="x"), SENDER, 422),
    ("grafana orgId 1e300", "POST", GRAFANA, JSON, _grafana(orgId=1e300), SENDER, 422),
    (
        "grafana values not numbers",
        "POST",
        GRAFANA,
        JSON,
        _dump(notification([{**alert(), "values": {"A": "x"}}], version="1", orgId=1)),
        SENDER,
        422,
    ),
    ("grafana not json", "POST", GRAFANA, JSON, b"<xml/>", SENDER, 400),
    (
        "grafana orgId missing",
        "POST",
        GRAFANA,
        JSON,
        _dump(notification([alert()], version="1")),
        SENDER,
        422,
    ),
    # --- Changes ----------------------------------------------------------------------------
    ("change not json", "POST", CHANGES, JSON, b"{", REPORTER, 400),
    ("change started_at 1e300", "POST", CHANGES, JSON, _change(started_at=1e300), REPORTER, 422),
    (
        "change started_at Infinity",
        "POST",
        CHANGES,
        JSON,
        _change(started_at=None).replace(b"null", b"Infinity"),
        REPORTER,
        400,
    ),
    (
        "change started_at NaN",
        "POST",
        CHANGES,
        JSON,
        _change(started_at=None).replace(b"null", b"NaN"),
        REPORTER,
        400,
    ),
    ("change started_at soon", "POST", CHANGES, JSON, _change(started_at="soon"), REPORTER, 422),
    (
        "change started_at 1990",
        "POST",
        CHANGES,
        JSON,
        _change(started_at="1990-01-01T00:00:00Z"),
        REPORTER,
        422,
    ),
    (
        "change completed_at before started_at",
        "POST",
        CHANGES,
        JSON,
        _change(completed_at="2001-01-01T00:00:00Z"),
        REPORTER,
        422,
    ),
    (
        "change ledger id",
        "POST",
        CHANGES,
        JSON,
        _change(id="k8s:deployment:prod/rag-api:rev9"),
        REPORTER,
        422,
    ),
    ("change author backout", "POST", CHANGES, JSON, _change(author="backout"), REPORTER, 422),
    ("change namespace null", "POST", CHANGES, JSON, _change(namespace=None), REPORTER, 422),
    ("change namespace outside", "POST", CHANGES, JSON, _change(namespace="kube-system"), REPORTER, 403),
    (
        "change handle in another namespace",
        "POST",
        CHANGES,
        JSON,
        _change(rollback={"type": "deployment", "name": "x", "namespace": "staging"}),
        REPORTER,
        422,
    ),
    (
        "change handle on a Secret",
        "POST",
        CHANGES,
        JSON,
        _change(rollback={"type": "secret", "name": "db"}),
        REPORTER,
        422,
    ),
    ("change description 10k chars", "POST", CHANGES, JSON, _change(description="d" * 10_000), REPORTER, 422),
    ("change id empty", "POST", CHANGES, JSON, _change(id=""), REPORTER, 422),
    ("change reported_by spoofed", "POST", CHANGES, JSON, _change(reported_by="release-bot"), REPORTER, 422),
    ("change array body", "POST", CHANGES, JSON, b"[]", REPORTER, 422),
    ("change 5000-level nested", "POST", CHANGES, JSON, _nested(5000), REPORTER, 400),
    ("change with the sender token", "POST", CHANGES, JSON, _change(), SENDER, 403),
    # --- Reads --------------------------------------------------------------------------------
    ("changes since_s 99999999999999", "GET", f"{CHANGES}?since_s=99999999999999", None, b"", OPERATOR, 422),
    ("changes since_s -1", "GET", f"{CHANGES}?since_s=-1", None, b"", OPERATOR, 422),
    ("incidents limit 0", "GET", "/v1/incidents?limit=0", None, b"", OPERATOR, 422),
    ("incidents limit 10^12", "GET", "/v1/incidents?limit=1000000000000", None, b"", OPERATOR, 422),
    ("incident alerts_limit 5000", "GET", "/v1/incidents/x?alerts_limit=5000", None, b"", OPERATOR, 422),
    ("GET with a body", "GET", "/v1/incidents", JSON, b"x" * 4096, OPERATOR, 413),
    # --- Approvals and labels ---------------------------------------------------------------------
    (
        "approval with user",
        "POST",
        APPROVAL,
        JSON,
        _dump({"request_id": "r", "approve": True, "user": "ml-oncall"}),
        OPERATOR,
        422,
    ),
    (
        "approval with source",
        "POST",
        APPROVAL,
        JSON,
        _dump({"request_id": "r", "approve": True, "source": "slack"}),
        OPERATOR,
        422,
    ),
    ("approval not json", "POST", APPROVAL, JSON, b"approve!", OPERATOR, 400),
    ("approval request_id missing", "POST", APPROVAL, JSON, _dump({"approve": True}), OPERATOR, 422),
    (
        "approval approve maybe",
        "POST",
        APPROVAL,
        JSON,
        _dump({"request_id": "r", "approve": "maybe"}),
        OPERATOR,
        422,
    ),
    (
        "approval unknown incident",
        "POST",
        APPROVAL,
        JSON,
        _dump({"request_id": "r", "approve": True}),
        OPERATOR,
        404,
    ),
    (
        "approval with the sender token",
        "POST",
        APPROVAL,
        JSON,
        _dump({"request_id": "r", "approve": True}),
        SENDER,
        403,
    ),
    ("culprit change_id empty", "POST", CULPRIT, JSON, _dump({"change_id": ""}), OPERATOR, 422),
    ("culprit not json", "POST", CULPRIT, JSON, b"]", OPERATOR, 400),
    # --- Slack (signed unless said otherwise) ------------------------------------------------------
    ("slack payload not JSON", "POST", SLACK, FORM, _click("{nope"), "slack", 400),
    ("slack no payload field", "POST", SLACK, FORM, b"token=x", "slack", 400),
    ("slack type view_submission", "POST", SLACK, FORM, _click({"type": "view_submission"}), "slack", 400),
    (
        "slack actions a string",
        "POST",
        SLACK,
        FORM,
        _click({"type": "block_actions", "actions": "x", "user": {"id": "U1"}}),
        "slack",
        400,
    ),
    (
        "slack actions of numbers",
        "POST",
        SLACK,
        FORM,
        _click({"type": "block_actions", "actions": [1, 2], "user": {"id": "U1"}}),
        "slack",
        400,
    ),
    (
        "slack user a string",
        "POST",
        SLACK,
        FORM,
        _click(
            {
                "type": "block_actions",
                "user": "U1",
                "actions": [{"action_id": "backout_approve", "value": _VALUE}],
            }
        ),
        "slack",
        400,
    ),
    (
        "slack button value not JSON",
        "POST",
        SLACK,
        FORM,
        _click(
            {
                "type": "block_actions",
                "user": {"id": "U1"},
                "actions": [{"action_id": "backout_approve", "value": "{"}],
            }
        ),
        "slack",
        400,
    ),
    (
        "slack value against its action",
        "POST",
        SLACK,
        FORM,
        _click(
            {
                "type": "block_actions",
                "user": {"id": "U1"},
                "actions": [{"action_id": "backout_reject", "value": _VALUE}],
            }
        ),
        "slack",
        400,
    ),
    (
        "slack 3000-level nested payload",
        "POST",
        SLACK,
        FORM,
        _click('{"type":"block_actions","actions":' + "[" * 3000 + "]" * 3000 + "}"),
        "slack",
        400,
    ),
    ("slack unsigned", "POST", SLACK, FORM, _click({"type": "block_actions"}), None, 401),
    ("slack stale signature", "POST", SLACK, FORM, _click({"type": "block_actions"}), "slack-stale", 401),
    ("slack over the Slack body cap", "POST", SLACK, FORM, b"payload=" + b"x" * (64 * 1024), "slack", 413),
]


def test_the_corpus_is_large_and_covers_every_route() -> None:
    assert len(CASES) >= 50
    assert len({case[0] for case in CASES}) == len(CASES), "case names are unique"
    routes = {case[2].split("?")[0] for case in CASES}
    assert {AM, GRAFANA, CHANGES, APPROVAL, CULPRIT, SLACK} <= routes


@pytest.mark.parametrize(
    ("name", "method", "path", "content_type", "body", "token", "status"),
    CASES,
    ids=[case[0] for case in CASES],
)
async def test_malformed_bodies_get_a_4xx_with_a_json_reason(
    secure_stack: SecureStack,
    name: str,
    method: str,
    path: str,
    content_type: str | None,
    body: bytes,
    token: str | None,
    status: int,
) -> None:
    headers: dict[str, str] = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if token == "slack":
        headers.update(signed(body.decode("latin-1")))
    elif token == "slack-stale":
        headers.update(signed(body.decode("latin-1"), stale=True))
    elif token is not None:
        headers.update(bearer(token))
    async with httpx.AsyncClient(base_url=secure_stack.api.url, timeout=30) as http:
        response = await http.request(
            method, path, content=body, headers=headers
        )  # a dropped connection raises
    assert response.status_code == status, f"{name}: {response.status_code} {response.text[:500]}"
    answer = response.json()
    assert answer.get("error"), f"{name}: no reason in {answer}"
    assert secure_stack.api.process.poll() is None, "the API process is still running"
