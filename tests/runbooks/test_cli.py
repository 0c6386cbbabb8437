"""`backout runbook simulate`, `test` and `schema` through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from incidents.actions import ACTIONS
from worker.cli import app

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios" / "runbooks"
PROMPT = SCENARIOS / "101_prompt_error_burn_auto_rollback"
runner = CliRunner()


def _attribution_file(tmp_path: Path, scenario: Path) -> Path:
    recorded = json.loads((scenario / "decision.json").read_text())["attribution"]
    path = tmp_path / "attribution.json"
    path.write_text(json.dumps(recorded))
    return path


def test_simulate_text(tmp_path: Path) -> None:
    attribution = _attribution_file(tmp_path, PROMPT)
    result = runner.invoke(
        app,
        [
            "runbook",
            "simulate",
            "llm-quality-rollback",
            "--bundle",
            str(PROMPT / "bundle.json"),
            "--attribution",
            str(attribution),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == "match: yes"
    assert "  in_freeze: freeze.active -> false" in lines
    assert "  rollback_budget: rollbacks.recent >= 3 -> false" in lines
    assert any(line.startswith("  confident_culprit: ") and line.endswith("-> true") for line in lines)
    assert (
        "    where attribution.available=true, attribution.top.probability=0.85, attribution.margin=0.75"
        in lines
    )
    assert "  - rollback [auto] change_id=chg-prompt" in lines


def test_simulate_json_matches_text(tmp_path: Path) -> None:
    attribution = _attribution_file(tmp_path, PROMPT)
    args = [
        "runbook",
        "simulate",
        "runbooks/library/llm-quality-rollback.yaml",
        "--bundle",
        str(PROMPT / "bundle.json"),
        "--attribution",
        str(attribution),
    ]
    data = json.loads(runner.invoke(app, [*args, "--json"]).output)
    text = runner.invoke(app, args).output
    assert data["matches"] is True and data["runbook"] == "llm-quality-rollback"
    assert [step["node"] for step in data["path"]] == [
        "in_freeze",
        "rollback_budget",
        "confident_culprit",
        "artifact_change",
        "rollback_artifact",
    ]
    for step in data["path"]:
        assert f"  {step['node']}: " in text
    assert data["path"][3]["inputs"] == {"attribution.top.kind": "prompt"}
    assert data["path"][3]["value"] is True
    assert data["actions"][0] == {
        "mode": "auto",
        "type": "rollback",
        "change_id": "chg-prompt",
        "to_revision": None,
        "to_version": None,
    }


def test_simulate_without_attribution_degrades(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["runbook", "simulate", "llm-quality-rollback", "--bundle", str(PROMPT / "bundle.json"), "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["attribution_source"]  # either the model ran or it says why not
    if data["attribution_source"].startswith("none"):
        assert data["actions"][0]["type"] == "page"


def test_simulate_shadow_runbook_marks_every_action_shadow(tmp_path: Path) -> None:
    scenario = SCENARIOS / "104_rag_staging_shadow_corpus"
    attribution = _attribution_file(tmp_path, scenario)
    result = runner.invoke(
        app,
        [
            "runbook",
            "simulate",
            "rag-shadow-trial",
            "--bundle",
            str(scenario / "bundle.json"),
            "--attribution",
            str(attribution),
            "--json",
        ],
    )
    data = json.loads(result.output)
    assert data["mode"] == "shadow"
    assert [(a["type"], a["mode"]) for a in data["actions"]] == [
        ("rollback", "shadow"),
        ("wait_verify", "shadow"),
    ]


def test_simulate_bad_inputs_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bundle.json"
    bad.write_text('{"version": 2}')
    cases = [
        ["runbook", "simulate", "no-such-runbook", "--bundle", str(PROMPT / "bundle.json")],
        ["runbook", "simulate", "gpu-health", "--bundle", str(tmp_path / "missing.json")],
        ["runbook", "simulate", "gpu-health", "--bundle", str(bad)],
        [
            "runbook",
            "simulate",
            "gpu-health",
            "--bundle",
            str(PROMPT / "bundle.json"),
            "--attribution",
            str(bad),
        ],
    ]
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "error:" in result.output and "Traceback" not in result.output


def test_runbook_test_passes_on_recorded_scenarios() -> None:
    result = runner.invoke(app, ["runbook", "test", "--scenarios", str(SCENARIOS), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    mine = [s for s in report["scenarios"] if s["scenario"][:3].isdigit() and int(s["scenario"][:3]) >= 100]
    assert len(mine) >= 17 and all(s["ok"] for s in mine)
    for item in report["coverage"]:  # the recorded incidents exercise every branch of every tree
        assert item["covered"] == item["total"], item


def test_runbook_test_catches_a_changed_decision(tmp_path: Path) -> None:
    root = tmp_path / "scenarios"
    shutil.copytree(PROMPT, root / PROMPT.name)
    decision_file = root / PROMPT.name / "decision.json"
    expected = json.loads(decision_file.read_text())
    expected["decisions"]["llm-quality-rollback"]["actions"][0]["change_id"] = "chg-image"
    decision_file.write_text(json.dumps(expected))
    result = runner.invoke(app, ["runbook", "test", "--scenarios", str(root)])
    assert result.exit_code == 1
    assert f"FAIL {PROMPT.name}" in result.output
    assert "llm-quality-rollback: 5/15 = 33%" in result.output


def test_schema_describes_the_yaml_keys() -> None:
    result = runner.invoke(app, ["runbook", "schema"])
    schema = json.loads(result.output)
    assert {"name", "mode", "match", "start", "nodes"} <= set(schema["required"])
    assert "source" not in schema["properties"]
    node = schema["$defs"]["TreeNode"]["properties"]
    assert {"if", "then", "else", "actions", "next"} <= set(node)
    steps = set(schema["$defs"]["ActionStep"]["properties"])
    assert steps == set(ACTIONS)  # every action class, found by incidents.actions
    assert steps >= {
        "rollback",
        "pause_rollout",
        "scale",
        "request_approval",
        "page",
        "notify",
        "wait_verify",
        "escalate",
        "record",
    }


def test_scenario_without_decision_is_reported_as_skipped(tmp_path: Path) -> None:
    root = tmp_path / "scenarios"
    (root / "001_new").mkdir(parents=True)
    shutil.copy(PROMPT / "bundle.json", root / "001_new" / "bundle.json")
    result = runner.invoke(app, ["runbook", "test", "--scenarios", str(root)])
    assert result.exit_code == 0, result.output
    assert "skip 001_new" in result.output
    assert "0/0 scenario(s) as expected, 1 without decision.json" in result.output


def test_record_writes_what_the_runbooks_decide(tmp_path: Path) -> None:
    root = tmp_path / "scenarios"
    shutil.copytree(PROMPT, root / PROMPT.name)
    decision_file = root / PROMPT.name / "decision.json"
    reviewed = json.loads(decision_file.read_text())
    decision_file.write_text(json.dumps({"attribution": reviewed["attribution"], "decisions": {}}))
    result = runner.invoke(app, ["runbook", "test", "--scenarios", str(root), "--record"])
    assert result.exit_code == 0, result.output
    recorded = json.loads(decision_file.read_text())
    assert recorded["selected"] == reviewed["selected"] == "llm-quality-rollback"
    got = recorded["decisions"]["llm-quality-rollback"]
    want = reviewed["decisions"]["llm-quality-rollback"]
    assert got["path"] == want["path"]
    assert [{k: v for k, v in a.items() if v is not None} for a in got["actions"]] == [
        {k: v for k, v in a.items() if v is not None} for a in want["actions"]
    ]
