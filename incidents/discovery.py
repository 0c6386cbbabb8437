"""How backout finds the parts that are added as one module each: runbook actions, their Kubernetes
executors, paging channels and alert sources. A package lists nothing; its modules are imported and
what they define is read."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from types import ModuleType
from typing import TypeVar

T = TypeVar("T")


def modules_of(package: str, path: Iterable[str]) -> list[ModuleType]:
    """Every module of a package (`__name__`, `__path__`), imported, in name order."""
    return [importlib.import_module(f"{package}.{module.name}") for module in pkgutil.iter_modules(path)]


def classes_in(modules: Iterable[ModuleType], base: type[T]) -> list[type[T]]:
    """The subclasses of `base` each module defines itself (not those it imports)."""
    return [
        value
        for module in modules
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, base) and value.__module__ == module.__name__
    ]


def values_in(modules: Iterable[ModuleType], name: str, kind: type[T]) -> list[T]:
    """The module-level `name` of each module that defines one of type `kind`."""
    return [value for module in modules if isinstance(value := getattr(module, name, None), kind)]
