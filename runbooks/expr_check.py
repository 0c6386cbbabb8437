"""Static checks of parsed runbook expressions: which variables they read, and whether those exist."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from runbooks.expr import Binary, Call, ExprError, ListExpr, Literal, Node, Unary, Var

# The variable tree a runbook may read: nested dicts of names; a leaf is a type name,
# "map" means any key is allowed below it.
Schema = Mapping[str, Any]


def check_variables(node: Node, schema: Schema) -> list[ExprError]:
    """Every variable path must exist in the schema; returns one error per bad path."""
    problems: list[ExprError] = []
    for var in _vars_in(node):
        _check_path(var, schema, problems)
    return problems


def _vars_in(node: Node) -> Iterator[Var]:
    """Every variable lookup in the tree, depth first: a variable comes before those in its indexes."""
    if isinstance(node, Var):
        yield node
        for part in node.path:
            if not isinstance(part, str):
                yield from _vars_in(part)
    elif isinstance(node, Unary):
        yield from _vars_in(node.operand)
    elif isinstance(node, Binary):
        yield from _vars_in(node.left)
        yield from _vars_in(node.right)
    elif isinstance(node, Call | ListExpr):
        for child in node.args if isinstance(node, Call) else node.items:
            yield from _vars_in(child)


def _check_path(var: Var, schema: Schema, problems: list[ExprError]) -> None:
    level: Any = schema
    walked: list[str] = []
    for part in var.path:
        if level in ("map", "list"):
            return
        if not isinstance(level, Mapping):
            problems.append(
                ExprError(f"'{'.'.join(walked)}' is a {level}; it has no field {part!r}", var.offset)
            )
            return
        if not isinstance(part, str):
            if isinstance(part, Literal) and isinstance(part.value, str):
                part = part.value
            else:
                problems.append(ExprError(f"'{'.'.join(walked)}' can only be indexed by a name", var.offset))
                return
        walked.append(part)
        if part not in level:
            name = ".".join(walked)
            known = ", ".join(sorted(level))
            problems.append(ExprError(f"undefined variable '{name}' (known here: {known})", var.offset))
            return
        level = level[part]


def variables_used(node: Node) -> list[Var]:
    """Every variable lookup in the expression, in source order, without repeats."""
    found: dict[str, Var] = {}
    for var in _vars_in(node):
        found.setdefault(describe_var(var), var)
    return sorted(found.values(), key=lambda var: var.offset)


def describe_var(var: Var) -> str:
    text = ""
    for part in var.path:
        if isinstance(part, str):
            text += f".{part}" if text else part
        elif isinstance(part, Literal):
            text += f"[{part.value!r}]"
        else:
            text += "[...]"
    return text
