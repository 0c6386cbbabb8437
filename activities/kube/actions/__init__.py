"""Kubernetes executors, one module per operation (the name of a mutating runbook action).

Each module defines `EXECUTOR`; they are found here by module, so adding an action's
Kubernetes side is one module in this package.
"""

from __future__ import annotations

from activities.kube.actions.base import Executor
from incidents.discovery import modules_of, values_in

EXECUTORS: dict[str, Executor] = {
    executor.operation: executor
    for executor in values_in(modules_of(__name__, __path__), "EXECUTOR", Executor)
}
