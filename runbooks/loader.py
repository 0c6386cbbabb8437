"""Load runbooks from disk (I/O: used by the activity and the CLI, never by the workflow)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from runbooks.lint import discover, lint_paths
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


FileStamp = tuple[str, int, int]

_cache_lock = threading.Lock()
_cache: dict[tuple[str, ...], tuple[tuple[FileStamp, ...], list[Runbook]]] = {}


def _stamps(paths: list[str | Path]) -> tuple[FileStamp, ...]:
    stamps: list[FileStamp] = []
    for path in discover(paths):
        stat = path.stat()
        stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)


def load_runbooks_cached(paths: Iterable[str | Path] | None = None) -> list[Runbook]:
    """load_runbooks, re-read only when a file under `paths` is added, removed or changed.

    Every incident loads the runbooks; linting them all each time is most of a storm's
    decision cost. A set that fails lint is never cached, so the error is raised each time.
    """
    chosen: list[str | Path] = list(paths) if paths is not None else [LIBRARY_DIR]
    key = tuple(str(path) for path in chosen)
    try:
        stamps = _stamps(chosen)
    except OSError:
        return load_runbooks(chosen)  # gone or unreadable: let the loader name the problem
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and cached[0] == stamps:
        return list(cached[1])
    runbooks = load_runbooks(chosen)
    with _cache_lock:
        _cache[key] = (stamps, runbooks)
    return list(runbooks)
