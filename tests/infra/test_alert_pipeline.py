"""Real Prometheus evaluates a rule, real Alertmanager delivers the v4 webhook with a bearer token."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.fixtures.prometheus import AlertingStackFactory, ReceivedRequest, WebhookReceiver

WEBHOOK_PATH = "/v1/alerts/alertmanager"
TOKEN = "test-token-5f1c"

ALWAYS_FIRING_RULES = """\
groups:
  - name: infra-test
    rules:
      - alert: BackoutInfraAlwaysFiring
        expr: vector(1)
        labels:
          severity: critical
          namespace: prod
          service: rag-api
        annotations:
          summary: always firing
"""


def _write_rules(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "always.yml").write_text(ALWAYS_FIRING_RULES, encoding="utf-8")
    return directory


def _is_firing_notification(request: ReceivedRequest) -> bool:
    return isinstance(request.body, dict) and request.body.get("status") == "firing"


@pytest.mark.e2e
def test_always_firing_rule_reaches_receiver_as_v4_payload_with_bearer_token(
    tmp_path: Path, webhook_receiver: WebhookReceiver, alerting_stack_factory: AlertingStackFactory
) -> None:
    stack = alerting_stack_factory(
        webhook_url=webhook_receiver.url + WEBHOOK_PATH,
        bearer_token=TOKEN,
        rule_dirs=[_write_rules(tmp_path / "rules")],
    )
    request = webhook_receiver.wait_for(_is_firing_notification, timeout_s=30)

    assert request.path == WEBHOOK_PATH
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    body = request.body
    assert body["version"] == "4"
    assert body["receiver"] == "backout"
    assert body["truncatedAlerts"] == 0
    assert body["externalURL"] == stack.alertmanager.url
    assert body["groupLabels"] == {"namespace": "prod", "service": "rag-api"}
    assert 'namespace="prod"' in body["groupKey"] and 'service="rag-api"' in body["groupKey"]
    assert body["commonLabels"]["alertname"] == "BackoutInfraAlwaysFiring"
    assert body["commonAnnotations"] == {"summary": "always firing"}
    [alert] = body["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": "BackoutInfraAlwaysFiring",
        "severity": "critical",
        "namespace": "prod",
        "service": "rag-api",
    }
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["startsAt"].startswith("20")
    assert len(alert["fingerprint"]) == 16
    assert alert["generatorURL"].startswith(stack.prometheus.url)
    assert [a["labels"]["alertname"] for a in stack.prometheus.alerts()] == ["BackoutInfraAlwaysFiring"]
    assert [a["fingerprint"] for a in stack.alertmanager.alerts()] == [alert["fingerprint"]]
    assert stack.prometheus.query("vector(1)")[0]["value"][1] == "1"


@pytest.mark.e2e
def test_alertmanager_retries_a_5xx_until_the_receiver_accepts(
    tmp_path: Path, webhook_receiver: WebhookReceiver, alerting_stack_factory: AlertingStackFactory
) -> None:
    webhook_receiver.fail_first = 2
    alerting_stack_factory(
        webhook_url=webhook_receiver.url + WEBHOOK_PATH,
        bearer_token=TOKEN,
        rule_dirs=[_write_rules(tmp_path / "rules")],
    )
    first, second, accepted = webhook_receiver.wait_for_count(3, timeout_s=40)
    assert _is_firing_notification(accepted)
    assert first.body["groupKey"] == second.body["groupKey"] == accepted.body["groupKey"]
    assert first.body["alerts"][0]["fingerprint"] == accepted.body["alerts"][0]["fingerprint"]
    assert accepted.headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.e2e
def test_shipped_rules_load_into_real_prometheus(
    shipped_rules_dir: Path, webhook_receiver: WebhookReceiver, alerting_stack_factory: AlertingStackFactory
) -> None:
    rule_files = sorted(shipped_rules_dir.glob("*.y*ml")) if shipped_rules_dir.is_dir() else []
    if not rule_files:
        pytest.skip(f"no shipped rules in {shipped_rules_dir} yet")
    stack = alerting_stack_factory(
        webhook_url=webhook_receiver.url + WEBHOOK_PATH, rule_dirs=[shipped_rules_dir]
    )
    groups = httpx.get(f"{stack.prometheus.url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    loaded_files = {Path(group["file"]).name for group in groups}
    assert loaded_files == {path.name for path in rule_files if path.read_text(encoding="utf-8").strip()}
    assert all(group["rules"] for group in groups)
