"""Alert sources: one module each (its payload model and a short route over api.intake.deliver).

Each module defines `router` (a FastAPI APIRouter); they are found here by module and served
behind the sender credential (api/auth.py), so a new source is authenticated without a word.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.auth import requires
from incidents.discovery import modules_of, values_in


def routers() -> list[APIRouter]:
    guarded = APIRouter(dependencies=[Depends(requires("sender"))])
    for router in values_in(modules_of(__name__, __path__), "router", APIRouter):
        guarded.include_router(router)
    return [guarded]
