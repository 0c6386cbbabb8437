"""Diffs a remediation shows in its result: what it changed, rendered for a human to read."""

from __future__ import annotations

import difflib
from typing import Any

import yaml


def yaml_diff(before: Any, after: Any, label: str) -> str:
    if isinstance(before, dict) and isinstance(after, dict):  # drop empty sections such as binaryData: {}
        before = {key: value for key, value in before.items() if value not in ({}, None)}
        after = {key: value for key, value in after.items() if value not in ({}, None)}
    lines = difflib.unified_diff(
        yaml.safe_dump(before, sort_keys=True).splitlines(),
        yaml.safe_dump(after, sort_keys=True).splitlines(),
        fromfile=f"{label} (before)",
        tofile=f"{label} (after)",
        lineterm="",
    )
    return "\n".join(lines)


def secret_diff(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]], label: str) -> str:
    """Key-level diff only: Secret values never appear in a diff, log or result."""
    lines = [f"--- {label} (before)", f"+++ {label} (after)"]
    for key_name in sorted({*before["data"], *after["data"]}):
        if key_name not in after["data"]:
            lines.append(f"- {key_name}: (removed)")
        elif key_name not in before["data"]:
            lines.append(f"+ {key_name}: (added, value hidden)")
        elif before["data"][key_name] != after["data"][key_name]:
            lines.append(f"~ {key_name}: (value changed, hidden)")
    return "\n".join(lines)
