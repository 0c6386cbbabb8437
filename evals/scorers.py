"""Scorers: each maps (output, expected, spec) to a score in [0, 1]; pass = score >= threshold.

`expected` may be a string, a number, a list of acceptable answers (best one counts), or for
json_field a mapping of field -> expected value.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from evals.models import ScorerSpec

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class ScorerError(ValueError):
    """A scorer that cannot be applied to an item (e.g. regex without a pattern)."""


def normalize(text: str) -> str:
    """Lower case, punctuation to spaces, articles dropped, whitespace collapsed."""
    lowered = _PUNCTUATION.sub(" ", text.lower())
    return " ".join(_ARTICLES.sub(" ", lowered).split())


def _alternatives(expected: Any) -> list[str]:
    if isinstance(expected, list):
        return [str(value) for value in expected]
    return [str(expected)]


def exact_match(output: str, expected: Any) -> float:
    return float(any(output.strip() == answer.strip() for answer in _alternatives(expected)))


def normalized_match(output: str, expected: Any) -> float:
    return float(any(normalize(output) == normalize(answer) for answer in _alternatives(expected)))


def _contains_tokens(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    if not needle:
        return False
    width = len(needle)
    return any(
        list(haystack[start : start + width]) == list(needle) for start in range(len(haystack) - width + 1)
    )


def contains(output: str, expected: Any) -> float:
    """The normalised expected answer appears as a whole-token run inside the normalised output."""
    tokens = normalize(output).split()
    return float(
        any(_contains_tokens(tokens, normalize(answer).split()) for answer in _alternatives(expected))
    )


def token_f1(output: str, expected: Any) -> float:
    best = 0.0
    predicted = normalize(output).split()
    for answer in _alternatives(expected):
        truth = normalize(answer).split()
        common = sum((Counter(predicted) & Counter(truth)).values())
        if common == 0 or not predicted or not truth:
            continue
        precision, recall = common / len(predicted), common / len(truth)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def regex_match(output: str, expected: Any, pattern: str | None) -> float:
    patterns = [pattern] if pattern else _alternatives(expected)
    try:
        return float(any(re.search(p, output, re.IGNORECASE) for p in patterns))
    except re.error as exc:
        raise ScorerError(f"invalid regex {patterns!r}: {exc}") from exc


def _parse_json_object(output: str) -> dict[str, Any] | None:
    for candidate in (output, *(_JSON_OBJECT.findall(output))):
        try:
            parsed = json.loads(candidate)
        except (json.JSONDecodeError, TypeError):
            continue
        if isinstance(parsed, dict):
            return parsed
    return None


def _field(data: dict[str, Any], dotted: str) -> Any:
    current: Any = data
    for part in dotted.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def json_field_match(output: str, expected: Any, fields: list[str] | None) -> float:
    """Share of expected fields whose value matches (normalised) in the JSON object found in the output."""
    if not isinstance(expected, dict) or not expected:
        raise ScorerError("json_field needs `expected` to be a non-empty JSON object")
    parsed = _parse_json_object(output)
    if parsed is None:
        return 0.0
    names = fields or list(expected)
    matched = 0
    for name in names:
        want, got = _field(expected, name), _field(parsed, name)
        if got is not None and normalize(json.dumps(got) if not isinstance(got, str) else got) == normalize(
            json.dumps(want) if not isinstance(want, str) else want
        ):
            matched += 1
    return matched / len(names)


_SIMPLE: dict[str, Callable[[str, Any], float]] = {
    "exact": exact_match,
    "normalized": normalized_match,
    "contains": contains,
    "token_f1": token_f1,
}


def score_text(spec: ScorerSpec, output: str, expected: Any) -> float:
    """Every scorer except the two model-backed ones (semantic, llm_judge), which score in batches."""
    if spec.name in _SIMPLE:
        return _SIMPLE[spec.name](output, expected)
    if spec.name == "regex":
        return regex_match(output, expected, spec.pattern)
    if spec.name == "json_field":
        return json_field_match(output, expected, spec.fields)
    raise ScorerError(f"scorer {spec.name!r} is not a text scorer")
