"""`backout runbook lint`: clean on the shipped runbooks, file:line:column on broken ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from incidents.actions.wait_verify import WaitVerifyAction
from runbooks.lint import lint_text
from runbooks.loader import LIBRARY_DIR
from worker.cli import app

BROKEN = Path(__file__).parent / "broken"
runner = CliRunner()


def test_shipped_runbooks_are_clean() -> None:
    result = runner.invoke(app, ["runbook", "lint", str(LIBRARY_DIR.parent)])
    assert result.exit_code == 0, result.output
    shipped = len(list(LIBRARY_DIR.glob("*.yaml")))
    assert shipped >= 5
    assert (
        result.output.strip() == f"ok: {shipped} runbook(s), {result.output.split()[3]} node(s), no problems"
    )


@pytest.mark.parametrize(
    ("fixture", "line", "column", "message"),
    [
        ("syntax_error.yaml", 5, 6, "YAML syntax error"),
        ("unknown_key.yaml", 4, 3, "unknown key 'alertname' in match"),
        ("unknown_action.yaml", 9, 9, "unknown action 'reboot_cluster'"),
        ("undefined_variable.yaml", 8, 9, "undefined variable 'attribution.top.kindd'"),
        ("cycle.yaml", 13, 11, "cycle: a -> b -> a"),
        ("dunder_import.yaml", 8, 10, "name '__import__' is not allowed"),
        ("attribute_access.yaml", 8, 14, "attribute and index access are only allowed on variables"),
        (
            "mode_not_allowed.yaml",
            10,
            17,
            "uses mode 'auto', which a runbook in mode 'shadow' does not allow",
        ),
        ("mode_not_allowed.yaml", 11, 3, "node 'orphan' is unreachable"),
        (
            "unknown_source.yaml",
            4,
            27,
            "unknown source 'alertmanger': incidents come from alertmanager, eval,",
        ),
    ],
)
def test_broken_fixture_reports_position(fixture: str, line: int, column: int, message: str) -> None:
    path = BROKEN / fixture
    result = runner.invoke(app, ["runbook", "lint", str(path)])
    assert result.exit_code == 1
    expected_prefix = f"{path}:{line}:{column}: "
    matching = [row for row in result.output.splitlines() if row.startswith(expected_prefix)]
    assert matching, result.output
    assert message in matching[0]


def test_every_broken_fixture_fails() -> None:
    result = runner.invoke(app, ["runbook", "lint", str(BROKEN)])
    assert result.exit_code == 1
    reported = {row.split(":")[0] for row in result.output.splitlines() if row.startswith(str(BROKEN))}
    assert reported == {str(path) for path in BROKEN.glob("*.yaml")}


def test_missing_path_is_a_usage_error() -> None:
    result = runner.invoke(app, ["runbook", "lint", "/nonexistent/runbooks"])
    assert result.exit_code == 2
    assert "no such file or directory" in result.output


VALID = """\
name: ok
mode: approve
match:
  alertnames: [A]
start: a
nodes:
  a:
    if: >-
      attribution.available and
      attribution.top.kindd == "model"
    then: b
    else: b
  b:
    actions:
      - rollback: {mode: shadow}
      - wait_verify: {duration: 90s, timeout: 15m}
"""


def test_block_scalar_expression_position() -> None:
    result = lint_text(VALID, "x.yaml")
    assert [str(problem) for problem in result.problems] == [
        "x.yaml:10:7: expression: undefined variable 'attribution.top.kindd' "
        "(known here: author, change_id, kind, minutes_before, namespace, probability, service)"
    ]


def test_stricter_action_mode_and_durations_are_fine() -> None:
    result = lint_text(VALID.replace("kindd", "kind"), "x.yaml")
    assert result.problems == []
    assert result.runbook is not None
    steps = result.runbook.nodes["b"].actions or []
    wait = steps[1].action
    assert isinstance(wait, WaitVerifyAction)
    assert (wait.duration_s, wait.timeout_s) == (90, 900)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nname: y\n", "2:1: duplicate key 'name'"),
        ("- a\n- b\n", "1:1: a runbook file must hold one mapping"),
        (VALID.replace("start: a", "start: nowhere"), "5:8: start node 'nowhere' is not defined"),
        (VALID.replace("then: b", "then: c"), "11:11: node 'a': then refers to undefined node 'c'"),
        (
            VALID.replace("mode: approve", "mode: yolo"),
            "2:7: mode: Input should be 'shadow', 'approve' or 'auto'",
        ),
        (VALID.replace("{mode: shadow}", "{kinds: [weights]}"), "15:28: nodes.b.actions.0.rollback.kinds.0"),
        (
            VALID.replace("- rollback: {mode: shadow}", "- {rollback: {}, page: {}}"),
            "15:9: nodes.b.actions.0",
        ),
        (VALID.replace("timeout: 15m", "timeout: soon"), "16:47: nodes.b.actions.1.wait_verify.timeout"),
    ],
)
def test_other_problems(text: str, message: str) -> None:
    problems = [str(problem) for problem in lint_text(text, "x.yaml").problems]
    assert any(problem.startswith(f"x.yaml:{message}") for problem in problems), problems


def test_readme_example_is_a_valid_runbook() -> None:
    readme = (LIBRARY_DIR.parent / "README.md").read_text()
    example = readme.split("```yaml\n")[1].split("```")[0]
    result = lint_text(example, "README.md")
    assert result.problems == []
