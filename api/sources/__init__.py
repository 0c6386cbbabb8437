"""Alert sources: one module each (its payload model and a short route over api.intake.deliver).

Each module defines `router` (a FastAPI APIRouter); they are found here by module.
"""

from __future__ import annotations

from fastapi import APIRouter

from incidents.discovery import modules_of, values_in


def routers() -> list[APIRouter]:
    return values_in(modules_of(__name__, __path__), "router", APIRouter)
