"""Label-value regular expressions on a linear-time engine (RE2, the engine Prometheus matchers use).

A runbook matcher runs inside the incident workflow on label values a sender chose: a backtracking
engine there lets one alert stall the workflow (`(a+)+$` on "aaaa...b"). RE2 never backtracks, so
a match costs time linear in the value; what RE2 cannot express (backreferences, lookaround) is
refused when the runbook is loaded or linted, with RE2's reason.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would also print every refused pattern to stderr


class PatternError(ValueError):
    """A pattern RE2 refuses; the message says why."""


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternError(f"invalid regular expression {pattern!r} (RE2 syntax): {reason}") from None


def full_match(pattern: str, value: str) -> bool:
    """Whether `pattern` matches all of `value` (Prometheus matchers are fully anchored)."""
    return compile_pattern(pattern).fullmatch(value) is not None
