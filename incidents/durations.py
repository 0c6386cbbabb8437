"""Durations as runbooks write them: seconds, or "90s", "15m", "1h", "1d"."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> Any:
    """Seconds as a number, or a string like "90s", "15m", "1h"."""
    if isinstance(value, str):
        found = _DURATION.match(value)
        if found is None:
            raise ValueError(f"duration {value!r} must be a number of seconds or like '90s', '15m', '1h'")
        return int(found.group(1)) * _UNIT_SECONDS[found.group(2) or "s"]
    return value


Seconds = Annotated[int, BeforeValidator(parse_duration)]
