"""The workflow sandbox as the worker runs it, made cheap to enter.

Temporal's sandbox imports each workflow's module afresh for every workflow instance it creates
(a new incident, or one evicted from the worker's cache), so no run sees another's module state.
Two things made that cost more than the workflow's own first task:
- helpers imported as `from workflows import gitops` were loaded again with the workflow module
  (only `from workflows.gitops import ...` is passed through); here every module that holds no
  state of a run is passed through by name, once per process;
- without bytecode files (PYTHONDONTWRITEBYTECODE, as in the image, or a read-only tree) each
  fresh import compiled the workflow module's source again; here each version of a workflow
  module's source is compiled once per process and its code object reused (a code object is
  immutable: the module is still executed afresh in its own namespace for every instance).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Iterable, Sequence
from typing import ClassVar

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

# What the workflows use that holds no state of a run: imported once per process. The workflow
# modules themselves (workflows.incident, workflows.eval) are still imported for each instance.
PASSTHROUGH_MODULES = (
    "activities",
    "attribution",
    "config",
    "evals",
    "incidents",
    "runbooks",
    "workflows.gitops",
    "workflows.paging",
    "workflows.retries",
    "workflows.state",
    "workflows.summary",
    "workflows.verify",
)


class _CompiledOnce(importlib.machinery.SourceFileLoader):
    """A source file loader that compiles each version of a file once per process."""

    _codes: ClassVar[dict[tuple[str, bytes], types.CodeType]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def get_code(self, fullname: str) -> types.CodeType | None:
        source = self.get_data(self.path)
        key = (self.path, source)
        with self._lock:
            code = self._codes.get(key)
        if code is None:
            code = super().get_code(fullname)
            if code is None:
                return None
            with self._lock:
                self._codes[key] = code
        return code


class _WorkflowModules(importlib.abc.MetaPathFinder):
    """Finds the named modules as the path finder does, loaded by _CompiledOnce."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
            spec.loader = _CompiledOnce(spec.loader.name, spec.loader.path)
        return spec


def compile_once(workflows: Iterable[type]) -> None:
    """Compile the modules defining `workflows` (and their packages) once per process."""
    names: set[str] = set()
    for workflow in workflows:
        parts = workflow.__module__.split(".")
        names.update(".".join(parts[: end + 1]) for end in range(len(parts)))
    for finder in sys.meta_path:
        if isinstance(finder, _WorkflowModules):
            finder.names = finder.names | names
            return
    sys.meta_path.insert(0, _WorkflowModules(names))


def sandbox_runner(workflows: Iterable[type] = ()) -> SandboxedWorkflowRunner:
    """The sandbox for the worker's workflows: helpers passed through, workflow modules compiled once."""
    compile_once(workflows)
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )
