"""Check runbook files and report every problem as `file:line:column: message`."""

from __future__ import annotations

import importlib.util
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from incidents.actions import MODE_RANK
from incidents.models import BUILT_IN_SOURCES
from runbooks import expr, expr_check
from runbooks.models import ACTION_NAMES, Runbook
from runbooks.variables import SCHEMA
from runbooks.yamlpos import Path_, Position, PositionedDocument, YamlSyntaxError, load_positioned

RUNBOOK_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


@dataclass
class LintResult:
    file: str
    runbook: Runbook | None
    problems: list[Problem]


class _Reporter:
    def __init__(self, file: str, document: PositionedDocument | None = None) -> None:
        self.file = file
        self.document = document
        self.problems: list[Problem] = []

    def at(self, position: Position, message: str) -> None:
        self.problems.append(Problem(self.file, position.line, position.column, message))

    def at_value(self, path: Path_, message: str) -> None:
        assert self.document is not None
        self.at(self.document.value_position(path), message)

    def at_key(self, path: Path_, message: str) -> None:
        assert self.document is not None
        self.at(self.document.key_position(path), message)


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Runbook files named directly, plus *.yaml / *.yml found under directories."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in RUNBOOK_SUFFIXES and p.is_file()))
        else:
            found.append(path)
    return found


def _describe(error: dict[str, Any]) -> tuple[Path_, str, bool]:
    """(path, message, points at the key rather than the value)."""
    loc: Path_ = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        name = loc[-1]
        if len(loc) >= 3 and loc[-3] == "actions" and isinstance(loc[-2], int):
            return loc, f"unknown action {name!r} (known: {', '.join(ACTION_NAMES)})", True
        where = ".".join(str(part) for part in loc[:-1]) or "top level"
        return loc, f"unknown key {name!r} in {where}", True
    if kind == "missing":
        where = ".".join(str(part) for part in loc[:-1]) or "top level"
        return loc, f"missing required key {loc[-1]!r} in {where}", True
    where = ".".join(str(part) for part in loc) or "runbook"
    message = str(error["msg"]).removeprefix("Value error, ")
    return loc, f"{where}: {message}", False


def _check_expressions(data: dict[str, Any], report: _Reporter) -> None:
    nodes = data.get("nodes")
    if not isinstance(nodes, dict):
        return
    for name, node in nodes.items():
        if not isinstance(node, dict) or not isinstance(node.get("if"), str):
            continue
        path: Path_ = ("nodes", name, "if")
        assert report.document is not None
        try:
            parsed = expr.parse(node["if"])
        except expr.ExprError as exc:
            report.at(report.document.expression_position(path, exc.offset), f"expression: {exc.message}")
            continue
        for problem in expr_check.check_variables(parsed, SCHEMA):
            report.at(
                report.document.expression_position(path, problem.offset), f"expression: {problem.message}"
            )


def _check_tree(runbook: Runbook, report: _Reporter) -> None:
    nodes = runbook.nodes
    if runbook.start not in nodes:
        report.at_value(("start",), f"start node {runbook.start!r} is not defined in nodes")
    for name, node in nodes.items():
        for field, target in (("then", node.then), ("else", node.otherwise), ("next", node.next)):
            if target is not None and target not in nodes:
                report.at_value(
                    ("nodes", name, field), f"node {name!r}: {field} refers to undefined node {target!r}"
                )
    if runbook.start not in nodes:
        return
    # Depth-first walk from start: a grey node reached again closes a cycle.
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = "grey"
        stack.append(name)
        node = nodes[name]
        for field, target in (("then", node.then), ("else", node.otherwise), ("next", node.next)):
            if target is None or target not in nodes:
                continue
            if state.get(target) == "grey":
                loop = [*stack[stack.index(target) :], target]
                report.at_value(("nodes", name, field), f"cycle: {' -> '.join(loop)}")
            elif target not in state:
                visit(target)
        stack.pop()
        state[name] = "black"

    visit(runbook.start)
    for name in nodes:
        if name not in state:
            report.at_key(("nodes", name), f"node {name!r} is unreachable from start {runbook.start!r}")


@cache
def known_sources() -> tuple[str, ...]:
    """Every source an incident can come from: one per alert-source module in api/sources/ (found
    by file, so linting does not import the HTTP API), and the built-in ones."""
    spec = importlib.util.find_spec("api.sources")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    modules = {module.name for module in pkgutil.iter_modules(locations) if not module.name.startswith("_")}
    return tuple(sorted(modules | set(BUILT_IN_SOURCES)))


def _check_sources(runbook: Runbook, report: _Reporter) -> None:
    known = known_sources()
    for index, source in enumerate(runbook.match.sources):
        if source not in known:
            report.at_value(
                ("match", "sources", index),
                f"unknown source {source!r}: incidents come from {', '.join(known)} (the runbook would "
                "never match)",
            )


def _check_modes(runbook: Runbook, report: _Reporter) -> None:
    for name, node in runbook.nodes.items():
        for index, step in enumerate(node.actions or []):
            override = step.action.mode_override()
            if override is not None and MODE_RANK[override] > MODE_RANK[runbook.mode]:
                report.at_value(
                    ("nodes", name, "actions", index, step.name, "mode"),
                    f"action {step.name} uses mode {override!r}, which a runbook in mode {runbook.mode!r} "
                    "does not allow (an action may only be stricter than its runbook)",
                )


def lint_text(text: str, file: str) -> LintResult:
    report = _Reporter(file)
    try:
        document = load_positioned(text)
    except YamlSyntaxError as exc:
        report.at(exc.position, exc.message)
        return LintResult(file, None, report.problems)
    report.document = document
    if not isinstance(document.data, dict):
        report.at(Position(1, 1), "a runbook file must hold one mapping (name, mode, match, start, nodes)")
        return LintResult(file, None, report.problems)
    _check_expressions(document.data, report)
    runbook: Runbook | None = None
    try:
        runbook = Runbook.model_validate({**document.data, "source": file})
    except ValidationError as exc:
        for error in exc.errors():
            loc, message, on_key = _describe(dict(error))
            if on_key:
                report.at_key(loc, message)
            else:
                report.at_value(loc, message)
    if runbook is not None:
        _check_tree(runbook, report)
        _check_modes(runbook, report)
        _check_sources(runbook, report)
    problems = sorted(set(report.problems))
    return LintResult(file, runbook if not problems else None, problems)


def lint_file(path: Path) -> LintResult:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return LintResult(str(path), None, [Problem(str(path), 1, 1, "no such file")])
    except (OSError, UnicodeDecodeError) as exc:
        return LintResult(str(path), None, [Problem(str(path), 1, 1, f"cannot read: {exc}")])
    return lint_text(text, str(path))


def lint_paths(paths: Iterable[str | Path]) -> list[LintResult]:
    """Lint every file; also reports runbook names used by more than one file."""
    results = [lint_file(path) for path in discover(paths)]
    seen: dict[str, str] = {}
    for result in results:
        if result.runbook is None:
            continue
        name = result.runbook.name
        if name in seen:
            result.problems.append(
                Problem(result.file, 1, 1, f"runbook name {name!r} is also used by {seen[name]}")
            )
            result.runbook = None
        else:
            seen[name] = result.file
    return results
