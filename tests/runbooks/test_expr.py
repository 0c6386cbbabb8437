"""The safe expression language: grammar, evaluation and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from runbooks import expr, expr_check, expr_eval
from runbooks.variables import SCHEMA

VARIABLES: dict[str, Any] = {
    "attribution": {"available": True, "top": {"kind": "prompt", "probability": 0.82}, "margin": 0.5},
    "labels": {"team": "ml", "severity": "critical"},
    "alert": {"names": ["LLMErrorBudgetBurn"], "count": 1},
    "rollbacks": {"recent": 2},
    "eval": {"delta": None},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("attribution.top.probability >= 0.8 and attribution.margin > 0.4", True),
        ('attribution.top.kind in ["model", "prompt"]', True),
        ('attribution.top.kind not in ["model", "prompt"]', False),
        ('labels.team == "ml" && !(rollbacks.recent > 2)', True),
        ('labels["severity"] == "critical"', True),
        ("labels.missing == null", True),
        ("rollbacks.recent * 2 + 1 == 5", True),
        ("10 % 4 == 2 and 7 / 2 == 3.5 and -rollbacks.recent == -2", True),
        ('len(alert.names) == 1 and startswith(alert.names[0], "LLM")', True),
        ('lower("ABC") == "abc" and contains("abcdef", "cd") and max(1, 5, 3) == 5', True),
        ("default(eval.delta, 0) == 0", True),
        ('"LLMErrorBudgetBurn" in alert.names or false', True),
        ("not true or false", False),
    ],
)
def test_evaluates(source: str, expected: bool) -> None:
    assert expr_eval.evaluate(expr.parse(source), VARIABLES) is expected


@pytest.mark.parametrize(
    ("source", "message", "offset"),
    [
        ("__import__('os')", "not allowed", 0),
        ('"x".__class__', "only allowed on variables", 3),
        ("(labels).__dict__", "not allowed", 9),
        ("(1).real", "only allowed on variables", 3),
        ("labels.__class__", "not allowed", 7),
        ("labels.team()", "only the built-in functions", 11),
        ("eval('1')", "unknown function 'eval'", 0),
        ("getattr(labels, 'x')", "unknown function 'getattr'", 0),
        ("1 < 2 < 3", "chained comparisons", 6),
        ("lambda: 1", "unexpected character ':'", 6),
        ("[x for x in labels]", "expected ']'", 3),
        ("a = 1", "unexpected character '='", 2),
        ("rollbacks.recent >", "unexpected end", 18),
        ('"open', "unterminated string", 0),
        ("len(1, 2)", "takes 1 argument", 0),
    ],
)
def test_refuses(source: str, message: str, offset: int) -> None:
    with pytest.raises(expr.ExprError) as caught:
        expr.parse(source)
    assert message in caught.value.message
    assert caught.value.offset == offset


def test_size_limits() -> None:
    with pytest.raises(expr.ExprError, match="longer than"):
        expr.parse("1 + " * 600 + "1")
    with pytest.raises(expr.ExprError, match="too complex"):
        expr.parse(" + ".join(["1"] * (expr.MAX_NODES // 2 + 10)))


def test_string_growth_is_bounded() -> None:
    big = {"labels": {"x": "a" * (expr_eval.MAX_STRING_CHARS - 1)}}
    with pytest.raises(expr.ExprError, match="string longer"):
        expr_eval.evaluate(expr.parse("labels.x + labels.x"), big)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("rollbacks.recent > 'a'", "cannot compare number > string"),
        ("attribution.top.probability + 'x' == 1", "cannot apply '+'"),
        ("eval.delta < 0", "cannot compare null < number"),
        ("rollbacks.recent / 0 == 1", "division by zero"),
        ("rollbacks.recent and true", "expected a boolean"),
        ("len(rollbacks.recent) == 1", "len() needs"),
    ],
)
def test_type_errors_are_reported_not_raised_as_python_errors(source: str, message: str) -> None:
    with pytest.raises(expr.ExprError) as caught:
        expr_eval.evaluate(expr.parse(source), VARIABLES)
    assert message in caught.value.message


def test_undefined_variables_are_found_with_their_column() -> None:
    parsed = expr.parse('attribution.top.kindd == "x" and incident.servce == "y" and labels.anything == "z"')
    problems = expr_check.check_variables(parsed, SCHEMA)
    assert [(p.offset, p.message.split(" (")[0]) for p in problems] == [
        (0, "undefined variable 'attribution.top.kindd'"),
        (33, "undefined variable 'incident.servce'"),
    ]


def test_unknown_root_variable() -> None:
    problems = expr_check.check_variables(expr.parse("os.system == 1"), SCHEMA)
    assert len(problems) == 1 and "undefined variable 'os'" in problems[0].message


def test_evaluation_step_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = expr.parse(" + ".join(["1"] * 20) + " == 20")
    assert expr_eval.evaluate(parsed, {}) is True
    monkeypatch.setattr(expr_eval, "MAX_STEPS", 10)
    with pytest.raises(expr.ExprError, match="exceeded 10 steps"):
        expr_eval.evaluate(parsed, {})


def test_every_parsable_function_is_implemented() -> None:
    assert set(expr_eval.FUNCTIONS) == set(expr.FUNCTION_ARITY)
