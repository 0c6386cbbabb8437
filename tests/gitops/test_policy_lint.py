"""The rollback action's `gitops` policy and `merge_deadline` in runbooks: parsed, planned, and linted
with file, line and field on a bad value."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from incidents.actions import RollbackAction
from runbooks.lint import lint_text
from worker.cli import app

runner = CliRunner()


def runbook(rollback: str) -> str:
    return f"""name: gitops-policy
mode: auto
match:
  alertnames: [PromptQualityLow]
start: act
nodes:
  act:
    actions:
      - rollback:
{rollback}      - wait_verify:
          duration: 1m
"""


@pytest.mark.parametrize(
    ("policy", "deadline", "seconds"),
    [
        ("revert_pr", "2h", 7200),
        ("revert_push", "90s", 90),
        ("suspend_only", "15m", 900),
        ("refuse", "45", 45),
    ],
)
def test_every_policy_and_a_deadline_lint_clean(policy: str, deadline: str, seconds: int) -> None:
    result = lint_text(
        runbook(f"          gitops: {policy}\n          merge_deadline: {deadline}\n"), "rb.yaml"
    )
    assert result.problems == []
    assert result.runbook is not None
    [step, _verify] = result.runbook.nodes["act"].actions or []
    action = step.action
    assert isinstance(action, RollbackAction)
    assert (action.gitops, action.merge_deadline_s) == (policy, seconds)


def test_without_a_policy_the_rollback_reverts_through_a_pull_request_within_an_hour() -> None:
    result = lint_text(runbook("          kinds: [prompt]\n"), "rb.yaml")
    assert result.runbook is not None
    action = (result.runbook.nodes["act"].actions or [])[0].action
    assert isinstance(action, RollbackAction)
    assert (action.gitops, action.merge_deadline_s) == ("revert_pr", 3600)


@pytest.mark.parametrize(
    ("rollback", "line", "column", "message"),
    [
        (
            "          gitops: revert_merge\n",
            10,
            19,
            "nodes.act.actions.0.rollback.gitops: Input should be 'revert_pr', 'revert_push', 'suspend_only' or 'refuse'",
        ),
        (
            "          gitops: revert_push\n          merge_deadline: soon\n",
            11,
            27,
            "nodes.act.actions.0.rollback.merge_deadline: duration 'soon' must be a number of seconds",
        ),
        (
            "          merge_deadline: 0\n",
            10,
            27,
            "nodes.act.actions.0.rollback.merge_deadline: Input should be greater than 0",
        ),
        ("          gitops_policy: refuse\n", 10, 11, "unknown key 'gitops_policy'"),
    ],
)
def test_a_bad_policy_or_deadline_names_file_line_and_field(
    rollback: str, line: int, column: int, message: str
) -> None:
    [problem] = lint_text(runbook(rollback), "runbooks/gitops.yaml").problems
    assert (problem.file, problem.line, problem.column) == ("runbooks/gitops.yaml", line, column), problem
    assert message in problem.message, problem.message


def test_backout_runbook_lint_fails_on_a_bad_policy(tmp_path: Path) -> None:
    path = tmp_path / "gitops.yaml"
    path.write_text(runbook("          gitops: always\n"), encoding="utf-8")
    result = runner.invoke(app, ["runbook", "lint", str(path)])
    assert result.exit_code != 0
    assert f"{path}:10:19: nodes.act.actions.0.rollback.gitops" in result.output
