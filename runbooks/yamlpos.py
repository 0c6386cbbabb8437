"""Read YAML into plain data while remembering where every key and value sits in the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


class YamlSyntaxError(ValueError):
    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass
class PositionedDocument:
    data: Any
    values: dict[Path_, Position] = field(default_factory=dict)
    keys: dict[Path_, Position] = field(default_factory=dict)
    scalars: dict[Path_, yaml.ScalarNode] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def value_position(self, path: Path_) -> Position:
        """Where the value at `path` starts, or its nearest enclosing value."""
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return Position(1, 1)

    def key_position(self, path: Path_) -> Position:
        return self.keys.get(path) or self.value_position(path)

    def expression_position(self, path: Path_, offset: int) -> Position:
        """Position of character `offset` inside the string scalar at `path`."""
        node = self.scalars.get(path)
        if node is None:
            return self.value_position(path)
        start, end = node.start_mark, node.end_mark
        quote = 1 if node.style in ("'", '"') else 0
        if node.style in ("|", ">"):
            # Block scalar: content starts on the line after the indicator.
            segments = [(index, self.lines[index]) for index in range(start.line + 1, end.line + 1)]
            first_column = None
        else:
            segments = [(index, self.lines[index]) for index in range(start.line, end.line + 1)]
            first_column = start.column + quote
        remaining = offset
        for number, (index, text) in enumerate(segments):
            if number == 0 and first_column is not None:
                column, content = first_column, text[first_column:]
            else:
                content = text.lstrip(" ")
                column = len(text) - len(content)
            if remaining <= len(content.rstrip()):
                return Position(index + 1, column + remaining + 1)
            # Line breaks inside a scalar count as one character (a space or a newline).
            remaining -= len(content.rstrip()) + 1
        return Position(start.line + 1, start.column + 1)


def _position(mark: Any) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def load_positioned(text: str) -> PositionedDocument:
    """Parse one YAML document; raises YamlSyntaxError with the problem's position."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = _position(mark) if mark is not None else Position(1, 1)
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        raise YamlSyntaxError(f"YAML syntax error: {problem}{context}", position) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"YAML error: {exc}", Position(1, 1)) from None
    finally:
        loader.dispose()
    document = PositionedDocument(data=None, lines=text.splitlines())
    if node is None:
        return document
    document.data = _build(node, (), document, loader)
    return document


def _build(node: yaml.Node, path: Path_, document: PositionedDocument, loader: yaml.SafeLoader) -> Any:
    document.values[path] = _position(node.start_mark)
    if isinstance(node, yaml.ScalarNode):
        document.scalars[path] = node
        try:
            return loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise YamlSyntaxError(f"YAML error: {exc.problem}", _position(node.start_mark)) from None
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, index), document, loader) for index, item in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlSyntaxError("merge keys (<<) are not supported", _position(key_node.start_mark))
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlSyntaxError("mapping keys must be plain strings", _position(key_node.start_mark))
            key = loader.construct_object(key_node)
            if not isinstance(key, str):
                key = str(key_node.value)
            if key in result:
                raise YamlSyntaxError(f"duplicate key {key!r}", _position(key_node.start_mark))
            document.keys[(*path, key)] = _position(key_node.start_mark)
            result[key] = _build(value_node, (*path, key), document, loader)
        return result
    raise YamlSyntaxError(f"unsupported YAML node {type(node).__name__}", _position(node.start_mark))
