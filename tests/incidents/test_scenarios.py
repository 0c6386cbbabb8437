"""The recorded-incident suites read by one typed loader: names, numbers, bundles and expectations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from incidents.scenarios import AttributionExpectation, ScenarioError, load_case, load_suite
from runbooks.scenarios import EXPECTATION_FILE, ScenarioExpectation

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_every_attribution_case_loads_with_a_typed_expectation() -> None:
    cases = load_suite(SCENARIOS / "attribution", AttributionExpectation, "expected.json")
    assert len(cases) >= 12 and all(case.suite == "attribution" for case in cases)
    assert all(isinstance(case.expected, AttributionExpectation) for case in cases)
    for case in cases:
        assert case.expected is not None
        ids = {change.id for change in case.bundle.changes}
        assert case.expected.culprit is None or case.expected.culprit in ids, case.name


def test_every_runbook_case_loads_with_its_decision() -> None:
    cases = load_suite(SCENARIOS / "runbooks", ScenarioExpectation, EXPECTATION_FILE)
    assert len(cases) >= 10
    assert [case.number for case in cases] == sorted(case.number for case in cases)
    assert all(case.expected is not None for case in cases)


def test_a_broken_case_is_named_with_its_file(tmp_path: Path) -> None:
    suite = tmp_path / "attribution"
    shutil.copytree(SCENARIOS / "attribution" / "001_recent_unrelated_deploy", suite / "001_first")
    (suite / "001_first" / "expected.json").write_text(json.dumps({"culprit": "chg-x"}))
    with pytest.raises(ScenarioError, match=r"001_first/expected.json: .*a culprit needs max_rank"):
        load_suite(suite, AttributionExpectation, "expected.json")
    (suite / "001_first" / "expected.json").write_text(json.dumps({"culprit": "chg-x", "max_rank": 1}))
    shutil.copytree(suite / "001_first", suite / "001_again")
    with pytest.raises(ScenarioError, match="case numbers used twice: 001"):
        load_suite(suite, AttributionExpectation, "expected.json")
    shutil.copytree(suite / "001_first", suite / "Second")
    with pytest.raises(ScenarioError, match="named NNN_slug"):
        load_case(suite / "Second", AttributionExpectation, "expected.json")
