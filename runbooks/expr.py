"""A small, safe expression language for runbook conditions.

Grammar (whitelisted, no loops, no attribute access outside the variable tree):

    expr    := or
    or      := and (("or" | "||") and)*
    and     := not (("and" | "&&") not)*
    not     := ("not" | "!") not | compare
    compare := sum (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") sum)?
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/" | "%") unary)*
    unary   := "-" unary | postfix
    postfix := primary ("." NAME | "[" expr "]")*     (only on a variable path)
    primary := NUMBER | STRING | true | false | null | NAME | FUNC "(" args ")" | "(" expr ")" | "[" items "]"

Parsing lives here, static checks of variable paths in runbooks.expr_check; evaluation
(runbooks.expr_eval) only reads plain dicts, lists, strings, numbers, booleans and None
and never calls getattr, so Python internals are unreachable. Size limits here and a
step limit there bound the work.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_SOURCE_CHARS = 2000
MAX_NODES = 300
# Parentheses, lists, calls, indexes and prefix operators nested deeper than this are refused:
# the parser recurses, and a deep expression is unreadable anyway.
MAX_DEPTH = 24


class ExprError(ValueError):
    """A parse or evaluation error; `offset` is the 0-based column within the expression."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


# --- AST ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    value: Any
    offset: int


@dataclass(frozen=True)
class ListExpr:
    items: tuple[Node, ...]
    offset: int


@dataclass(frozen=True)
class Var:
    """A dotted lookup into the variable tree, e.g. attribution.top.kind or labels["team"]."""

    path: tuple[str | Node, ...]
    offset: int


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Node
    offset: int


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node
    offset: int


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]
    offset: int


Node = Literal | ListExpr | Var | Unary | Binary | Call


# Built-in functions and how many arguments each takes (None = one or more).
FUNCTION_ARITY: dict[str, int | None] = {
    "len": 1,
    "lower": 1,
    "upper": 1,
    "startswith": 2,
    "endswith": 2,
    "contains": 2,
    "abs": 1,
    "min": None,
    "max": None,
    "default": 2,
}

KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return "unsupported value"


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- Tokenizer -----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>+\-*/%()\[\].,!])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    offset: int


def _unescape(body: str, offset: int) -> str:
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            code = body[index + 1]
            if code not in _ESCAPES:
                raise ExprError(f"unknown escape '\\{code}' in string", offset + index + 1)
            out.append(_ESCAPES[code])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(source):
        found = _TOKEN.match(source, position)
        if found is None:
            char = source[position]
            if char in "\"'":
                raise ExprError("unterminated string", position)
            raise ExprError(f"unexpected character {char!r}", position)
        kind = found.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, found.group(), position))
        position = found.end()
    tokens.append(Token("end", "", len(source)))
    return tokens


# --- Parser ---------------------------------------------------------------------------------

_COMPARISONS = {"==", "!=", "<", "<=", ">", ">=", "in", "not in"}
# Token -> operator for each left-associative level; the word and symbol spellings build the same node.
_OR_OPERATORS = {"or": "or", "||": "or"}
_AND_OPERATORS = {"and": "and", "&&": "and"}
_SUM_OPERATORS = {"+": "+", "-": "-"}
_PRODUCT_OPERATORS = {"*": "*", "/": "/", "%": "%"}


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = tokenize(source)
        self.index = 0
        self.nodes = 0
        self.depth = 0

    def deeper(self, offset: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"expression nested more than {MAX_DEPTH} levels deep", offset)

    def shallower(self) -> None:
        self.depth -= 1

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.peek()
        self.index += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.peek()
        return token.kind in ("op", "name") and token.text in texts

    def expect(self, text: str) -> Token:
        token = self.peek()
        if token.text != text or token.kind not in ("op", "name"):
            found = "end of expression" if token.kind == "end" else repr(token.text)
            raise ExprError(f"expected {text!r}, found {found}", token.offset)
        return self.advance()

    def count(self, offset: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ExprError(f"expression too complex (more than {MAX_NODES} nodes)", offset)

    def parse(self) -> Node:
        node = self.parse_or()
        token = self.peek()
        if token.kind != "end":
            raise ExprError(f"unexpected {token.text!r}", token.offset)
        return node

    def parse_left_associative(self, operators: Mapping[str, str], operand: Callable[[], Node]) -> Node:
        """One precedence level of left-associative binary operators: `operators` maps each accepted
        token to the operator the node is built with, `operand` parses the next tighter level."""
        left = operand()
        while self.at(*operators):
            token = self.advance()
            self.count(token.offset)
            left = Binary(operators[token.text], left, operand(), token.offset)
        return left

    def parse_or(self) -> Node:
        return self.parse_left_associative(_OR_OPERATORS, self.parse_and)

    def parse_and(self) -> Node:
        return self.parse_left_associative(_AND_OPERATORS, self.parse_not)

    def parse_prefix(self, operator: str, operand: Callable[[], Node]) -> Node:
        token = self.advance()
        self.count(token.offset)
        self.deeper(token.offset)
        node = Unary(operator, operand(), token.offset)
        self.shallower()
        return node

    def at_not_in(self) -> bool:
        return self.at("not") and self.peek(1).text == "in"

    def parse_not(self) -> Node:
        if self.at("not", "!") and not self.at_not_in():
            return self.parse_prefix("not", self.parse_not)
        return self.parse_compare()

    def parse_compare(self) -> Node:
        left = self.parse_sum()
        operator: str | None = None
        token = self.peek()
        if self.at_not_in():
            self.advance()
            self.advance()
            operator = "not in"
        elif self.at(*(_COMPARISONS - {"not in"})):
            operator = self.advance().text
        if operator is None:
            return left
        self.count(token.offset)
        node = Binary(operator, left, self.parse_sum(), token.offset)
        if self.at(*_COMPARISONS) or self.at_not_in():
            raise ExprError("chained comparisons are not allowed; use 'and'", self.peek().offset)
        return node

    def parse_sum(self) -> Node:
        return self.parse_left_associative(_SUM_OPERATORS, self.parse_product)

    def parse_product(self) -> Node:
        return self.parse_left_associative(_PRODUCT_OPERATORS, self.parse_unary)

    def parse_unary(self) -> Node:
        if self.at("-"):
            return self.parse_prefix("-", self.parse_unary)
        return self.parse_postfix()

    def parse_postfix(self) -> Node:
        node = self.parse_primary()
        while self.at(".", "["):
            token = self.advance()
            if not isinstance(node, Var):
                raise ExprError("attribute and index access are only allowed on variables", token.offset)
            if token.text == ".":
                name = self.advance()
                if name.kind != "name":
                    raise ExprError("expected a name after '.'", name.offset)
                _check_name(name)
                node = Var((*node.path, name.text), node.offset)
            else:
                self.deeper(token.offset)
                index = self.parse_or()
                self.expect("]")
                self.shallower()
                node = Var((*node.path, index), node.offset)
            self.count(token.offset)
        if self.at("(") and isinstance(node, Var):
            raise ExprError("only the built-in functions may be called", self.peek().offset)
        return node

    def parse_primary(self) -> Node:
        token = self.advance()
        self.count(token.offset)
        if token.kind == "number":
            text = token.text
            value: Any = float(text) if any(c in text for c in ".eE") else int(text)
            return Literal(value, token.offset)
        if token.kind == "string":
            return Literal(_unescape(token.text[1:-1], token.offset + 1), token.offset)
        if token.kind == "name":
            if token.text in ("true", "false", "null"):
                return Literal({"true": True, "false": False, "null": None}[token.text], token.offset)
            if token.text in KEYWORDS:
                raise ExprError(f"unexpected keyword {token.text!r}", token.offset)
            _check_name(token)
            if self.at("("):
                return self.parse_call(token)
            return Var((token.text,), token.offset)
        if token.kind == "op" and token.text == "(":
            self.deeper(token.offset)
            node = self.parse_or()
            self.expect(")")
            self.shallower()
            return node
        if token.kind == "op" and token.text == "[":
            self.deeper(token.offset)
            items = self.parse_comma_separated("]")
            self.shallower()
            return ListExpr(items, token.offset)
        if token.kind == "end":
            raise ExprError("unexpected end of expression", token.offset)
        raise ExprError(f"unexpected {token.text!r}", token.offset)

    def parse_call(self, name: Token) -> Node:
        if name.text not in FUNCTION_ARITY:
            known = ", ".join(sorted(FUNCTION_ARITY))
            raise ExprError(f"unknown function {name.text!r} (allowed: {known})", name.offset)
        self.expect("(")
        self.deeper(name.offset)
        args = self.parse_comma_separated(")")
        self.shallower()
        arity = FUNCTION_ARITY[name.text]
        if arity is not None and len(args) != arity:
            raise ExprError(f"{name.text}() takes {arity} argument(s), got {len(args)}", name.offset)
        return Call(name.text, args, name.offset)

    def parse_comma_separated(self, closing: str) -> tuple[Node, ...]:
        """Expressions separated by commas up to and including `closing`; there may be none."""
        items: list[Node] = []
        if not self.at(closing):
            items.append(self.parse_or())
            while self.at(","):
                self.advance()
                items.append(self.parse_or())
        self.expect(closing)
        return tuple(items)


def _check_name(token: Token) -> None:
    if token.text.startswith("_"):
        raise ExprError(f"name {token.text!r} is not allowed (names may not start with '_')", token.offset)


def parse(source: str) -> Node:
    """Parse an expression; raises ExprError with the offending column."""
    if not isinstance(source, str):
        raise ExprError(f"expression must be a string, got {type_name(source)}")
    if len(source) > MAX_SOURCE_CHARS:
        raise ExprError(f"expression longer than {MAX_SOURCE_CHARS} characters")
    if not source.strip():
        raise ExprError("expression is empty")
    return _Parser(source).parse()
