"""Shipped Prometheus rules: promtool check/test, and every alert names a runbook that handles it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from runbooks.loader import load_runbooks

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = sorted((DEPLOY / "rules").glob("*.yaml"))
RULE_TESTS = sorted((DEPLOY / "tests").glob("*_test.yaml"))
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (make system-deps)")


def _alerts() -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    for file in RULES:
        for group in yaml.safe_load(file.read_text())["groups"]:
            found.extend(rule for rule in group["rules"] if "alert" in rule)
    return found


@needs_promtool
def test_promtool_check_rules() -> None:
    assert RULES
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", *map(str, RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULES)


@needs_promtool
def test_promtool_unit_tests() -> None:
    assert len(RULE_TESTS) == len(RULES)
    result = subprocess.run(
        [str(PROMTOOL), "test", "rules", *map(str, RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=DEPLOY / "tests",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def _firing_label_sets() -> dict[str, list[dict[str, str]]]:
    """alertname -> label sets promtool tests expect to fire."""
    firing: dict[str, list[dict[str, str]]] = {}
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for check in test.get("alert_rule_test", []):
                for expected in check.get("exp_alerts") or []:
                    firing.setdefault(check["alertname"], []).append(expected["exp_labels"])
    return firing


def test_every_alert_is_tested_firing_and_named_runbook_handles_it() -> None:
    runbooks = {runbook.name: runbook for runbook in load_runbooks()}
    firing = _firing_label_sets()
    for alert in _alerts():
        name = str(alert["alert"])
        labels = alert["labels"]
        annotations = alert["annotations"]
        assert isinstance(labels, dict) and isinstance(annotations, dict)
        assert labels["severity"] in ("critical", "warning"), name
        assert firing.get(name), f"{name} has no promtool test where it fires"
        for expected in firing[name]:
            assert {"service", "namespace", "severity"} <= set(expected), f"{name}: {expected}"
        runbook = runbooks.get(annotations["runbook"])
        assert runbook is not None, f"{name}: runbook {annotations['runbook']!r} is not shipped"
        assert name in runbook.match.alertnames, f"{name}: runbook {runbook.name} does not match it"
