"""Evaluate parsed runbook expressions against plain data, within a step budget."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from runbooks.expr import Binary, Call, ExprError, ListExpr, Literal, Node, Unary, Var, is_number, type_name

MAX_STEPS = 5000
MAX_STRING_CHARS = 10_000

# --- Built-in functions -------------------------------------------------------------


def _length(value: Any) -> int:
    if not isinstance(value, str | list | dict):
        raise TypeError(f"len() needs a string, list or map, got {type_name(value)}")
    return len(value)


def _string_function(name: str, body: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def run(text: Any, part: Any) -> bool:
        if not isinstance(text, str) or not isinstance(part, str):
            raise TypeError(f"{name}() needs two strings")
        return body(text, part)

    return run


def _text(name: str, body: Callable[[str], str]) -> Callable[[Any], str]:
    def run(text: Any) -> str:
        if not isinstance(text, str):
            raise TypeError(f"{name}() needs a string, got {type_name(text)}")
        return body(text)

    return run


def _numbers(name: str, body: Callable[..., float]) -> Callable[..., float]:
    def run(*values: Any) -> float:
        if not values or not all(is_number(v) for v in values):
            raise TypeError(f"{name}() needs numbers")
        return body(*values)

    return run


def _default(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": _length,
    "lower": _text("lower", str.lower),
    "upper": _text("upper", str.upper),
    "startswith": _string_function("startswith", str.startswith),
    "endswith": _string_function("endswith", str.endswith),
    "contains": _string_function("contains", lambda text, part: part in text),
    "abs": _numbers("abs", abs),
    "min": _numbers("min", min),
    "max": _numbers("max", max),
    "default": _default,
}

# --- Evaluation ----------------------------------------------------------------------------------


class _Budget:
    def __init__(self) -> None:
        self.steps = 0

    def tick(self, offset: int) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise ExprError(f"evaluation exceeded {MAX_STEPS} steps", offset)


def evaluate(node: Node, variables: Mapping[str, Any]) -> Any:
    """Evaluate a parsed expression against plain data; raises ExprError on type errors."""
    return _eval(node, variables, _Budget())


def _eval(node: Node, variables: Mapping[str, Any], budget: _Budget) -> Any:
    budget.tick(node.offset)
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, ListExpr):
        return [_eval(item, variables, budget) for item in node.items]
    if isinstance(node, Var):
        return _lookup(node, variables, budget)
    if isinstance(node, Unary):
        value = _eval(node.operand, variables, budget)
        if node.op == "not":
            return not _truth(value, node.offset)
        if not is_number(value):
            raise ExprError(f"cannot negate {type_name(value)}", node.offset)
        return -value
    if isinstance(node, Call):
        function = FUNCTIONS[node.name]
        args = [_eval(arg, variables, budget) for arg in node.args]
        try:
            return function(*args)
        except TypeError as exc:
            raise ExprError(str(exc), node.offset) from None
    return _binary(node, variables, budget)


def _truth(value: Any, offset: int) -> bool:
    if not isinstance(value, bool):
        raise ExprError(f"expected a boolean, got {type_name(value)}", offset)
    return value


def _lookup(node: Var, variables: Mapping[str, Any], budget: _Budget) -> Any:
    current: Any = variables
    for part in node.path:
        key = part if isinstance(part, str) else _eval(part, variables, budget)
        if isinstance(current, dict):
            if not isinstance(key, str):
                raise ExprError(f"map keys are strings, got {type_name(key)}", node.offset)
            current = current.get(key)
        elif isinstance(current, list):
            if not is_number(key) or int(key) != key:
                raise ExprError("list index must be a whole number", node.offset)
            index = int(key)
            current = current[index] if -len(current) <= index < len(current) else None
        elif current is None:
            return None
        else:
            raise ExprError(f"cannot look up {key!r} in a {type_name(current)}", node.offset)
    return current


def _binary(node: Binary, variables: Mapping[str, Any], budget: _Budget) -> Any:
    op = node.op
    left = _eval(node.left, variables, budget)
    if op == "and":
        return _truth(left, node.offset) and _truth(_eval(node.right, variables, budget), node.offset)
    if op == "or":
        return _truth(left, node.offset) or _truth(_eval(node.right, variables, budget), node.offset)
    right = _eval(node.right, variables, budget)
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if op in ("in", "not in"):
        if isinstance(right, list):
            found = any(_equal(left, item) for item in right)
        elif isinstance(right, str | dict) and isinstance(left, str):
            found = left in right
        elif right is None:
            found = False
        else:
            raise ExprError(
                f"'in' needs a list, map or string on the right, got {type_name(right)}", node.offset
            )
        return found if op == "in" else not found
    if op in ("<", "<=", ">", ">="):
        return _order(op, left, right, node.offset)
    return _arithmetic(op, left, right, node.offset)


def _equal(left: Any, right: Any) -> bool:
    if is_number(left) and is_number(right):
        return bool(left == right)
    return type(left) is type(right) and bool(left == right)


def _order(op: str, left: Any, right: Any, offset: int) -> bool:
    comparable = (is_number(left) and is_number(right)) or (isinstance(left, str) and isinstance(right, str))
    if not comparable:
        raise ExprError(f"cannot compare {type_name(left)} {op} {type_name(right)}", offset)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _arithmetic(op: str, left: Any, right: Any, offset: int) -> Any:
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        if len(left) + len(right) > MAX_STRING_CHARS:
            raise ExprError(f"string longer than {MAX_STRING_CHARS} characters", offset)
        return left + right
    if not (is_number(left) and is_number(right)):
        raise ExprError(f"cannot apply {op!r} to {type_name(left)} and {type_name(right)}", offset)
    if op in ("/", "%") and right == 0:
        raise ExprError("division by zero", offset)
    result = {
        "+": lambda: left + right,
        "-": lambda: left - right,
        "*": lambda: left * right,
        "/": lambda: left / right,
        "%": lambda: left % right,
    }[op]()
    if isinstance(result, float) and not math.isfinite(result):
        raise ExprError("result is not a finite number", offset)
    return result
