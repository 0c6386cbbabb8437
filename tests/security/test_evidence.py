"""Issue 12, finding "Alerts run any PromQL": on the main of the issue label values went into the
configured evidence queries unescaped (`service="x"} or count by (__name__) ({__name__=~".+"}) or
up{a="` reached Prometheus as written), the `backout.dev/evidence-query` annotation was sent
verbatim, one notification of 200 alerts caused 201 range queries and `startsAt: 1e12` became a
25-year range. Through the API process, the real worker and a recording Prometheus."""

from __future__ import annotations

import time
from typing import Any

import pytest

from activities.evidence import promql_string_content
from tests.pipeline.payloads import alert, notification
from tests.security.conftest import (
    ERROR_RATE,
    LATENCY,
    OPERATOR,
    SENDER,
    RecordedQuery,
    SecureStack,
    wait_for_state,
)

pytestmark = [pytest.mark.temporal]

DONE = {"needs_human", "no_action", "shadowed", "recovered", "resolved_before_action"}
INJECTION = 'x"} or count by (__name__) ({__name__=~".+"}) or up{a="'


async def _incident(stack: SecureStack, alerts: list[dict[str, Any]], group: str) -> dict[str, Any]:
    async with stack.http(SENDER) as http:
        answer = await http.post("/v1/alerts/alertmanager", json=notification(alerts, group=group))
    assert answer.status_code == 202, answer.text
    async with stack.http(OPERATOR) as http:
        return await wait_for_state(http, answer.json()["incident_id"], DONE)


def _asked(stack: SecureStack, since: int, about: str) -> list[RecordedQuery]:
    return [query for query in stack.prometheus.queries[since:] if about in query.query]


async def test_label_values_stay_values(secure_stack: SecureStack) -> None:
    since = len(secure_stack.prometheus.queries)
    await _incident(secure_stack, [alert(service=INJECTION, namespace="prod")], group="injection")
    expected = ERROR_RATE.query.replace("{namespace}", "prod").replace(
        "{service}", promql_string_content(INJECTION)
    )
    sent = [query.query for query in secure_stack.prometheus.queries[since:]]
    assert expected in sent, sent
    assert all('x"} or count' not in query for query in sent), sent
    # Read as PromQL reads a double-quoted string, the label value is the whole injection text, and
    # the query goes on exactly as the template does after it.
    value, rest = _string_literal(expected, expected.index('service="') + len('service="'))
    assert value == INJECTION and rest == "}[5m]))"


def _string_literal(text: str, start: int) -> tuple[str, str]:
    """The content of the PromQL double-quoted string starting at `start`, and the text after it."""
    escapes = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
    out: list[str] = []
    index = start
    while text[index] != '"':
        if text[index] == "\\":
            out.append(escapes[text[index + 1]])
            index += 2
        else:
            out.append(text[index])
            index += 1
    return "".join(out), text[index + 1 :]


async def test_alerts_name_queries_and_never_carry_promql(secure_stack: SecureStack) -> None:
    since = len(secure_stack.prometheus.queries)
    raw = {"backout.dev/evidence-query": 'count by (__name__) ({__name__=~".+"})'}
    named = {"backout.dev/evidence-query": LATENCY.name}
    fired = [
        {**alert(name="Raw", service="annotated"), "annotations": raw},
        {**alert(name="Named", service="annotated"), "annotations": named},
    ]
    view = await _incident(secure_stack, fired, group="annotated")
    sent = [query.query for query in secure_stack.prometheus.queries[since:]]
    assert not any("__name__" in query for query in sent), sent
    assert any(query.startswith("histogram_quantile(0.99") and '"annotated"' in query for query in sent), sent
    notes = " ".join(entry["message"] for entry in view["timeline"])
    assert "PromQL in an alert is never run" in notes


async def test_one_notification_of_200_alerts_sends_a_bounded_number_of_queries(
    secure_stack: SecureStack,
) -> None:
    since = len(secure_stack.prometheus.queries)
    fired = [
        {
            **alert(name=f"Storm{i}", service="storm"),
            "annotations": {"backout.dev/evidence-query": f'up{{job="{i}"}} or {LATENCY.name}'},
        }
        for i in range(200)
    ]
    view = await _incident(secure_stack, fired, group="storm")
    sent = _asked(secure_stack, since, '"storm"')
    assert 1 <= len(sent) <= secure_stack.settings.max_evidence_queries, [q.query for q in sent]
    assert not any("job=" in query.query for query in secure_stack.prometheus.queries[since:])
    assert view["alerts_total"] == 100, "an incident keeps 100 alerts whole"


async def test_times_from_the_alert_are_clamped_to_the_lookback(secure_stack: SecureStack) -> None:
    since = len(secure_stack.prometheus.queries)
    old = alert(service="ancient", starts_at="2001-09-09T01:46:40Z")
    view = await _incident(secure_stack, [old], group="ancient")
    sent = _asked(secure_stack, since, '"ancient"')
    assert sent, "evidence was asked for"
    now = time.time()
    lookback = secure_stack.settings.lookback_s
    for query in sent:
        assert query.end <= now + 1
        assert query.end - query.start <= lookback + 600 + 60, (query.start, query.end)
        assert query.step <= (lookback + 660) / 300 + 1
    assert any("clamped" in entry["message"] for entry in view["timeline"])
