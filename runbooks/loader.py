"""Load runbooks from disk (I/O: used by the activity and the CLI, never by the workflow)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from runbooks.lint import lint_paths
from runbooks.models import Runbook

LIBRARY_DIR = Path(__file__).resolve().parent / "library"


class RunbookLoadError(ValueError):
    """Runbooks that fail lint; the message lists every problem as file:line:column: message."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_runbooks(paths: Iterable[str | Path] | None = None) -> list[Runbook]:
    """Every runbook under `paths` (default: the shipped library), sorted by name.

    Refuses the whole set if any file fails lint: a half-loaded set could silently
    route an incident to a different runbook than the team reviewed.
    """
    chosen = list(paths) if paths is not None else [LIBRARY_DIR]
    for path in chosen:
        if not Path(path).exists():
            raise RunbookLoadError([f"{path}: no such file or directory"])
    results = lint_paths(chosen)
    problems = [str(problem) for result in results for problem in result.problems]
    if problems:
        raise RunbookLoadError(problems)
    runbooks = [result.runbook for result in results if result.runbook is not None]
    return sorted(runbooks, key=lambda runbook: runbook.name)
