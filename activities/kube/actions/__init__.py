"""Kubernetes executors, one module per operation (the name of a mutating runbook action).

Each module defines `EXECUTOR`; they are found here by module, so adding an action's
Kubernetes side is one module in this package.
"""

from __future__ import annotations

import importlib
import pkgutil

from activities.kube.actions.base import Executor


def _discover() -> dict[str, Executor]:
    found: dict[str, Executor] = {}
    for module in pkgutil.iter_modules(__path__):
        executor = getattr(importlib.import_module(f"{__name__}.{module.name}"), "EXECUTOR", None)
        if isinstance(executor, Executor):
            found[executor.operation] = executor
    return found


EXECUTORS: dict[str, Executor] = _discover()
