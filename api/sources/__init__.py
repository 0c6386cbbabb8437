"""Alert sources: one module each (its payload model and a short route over api.intake.deliver).

Each module defines `router` (a FastAPI APIRouter); they are found here by module.
"""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    found: list[APIRouter] = []
    for module in pkgutil.iter_modules(__path__):
        router = getattr(importlib.import_module(f"{__name__}.{module.name}"), "router", None)
        if isinstance(router, APIRouter):
            found.append(router)
    return found
