"""API docs, only when `api_docs` is set: /openapi.json (operator token) and /docs (a page that
loads it; send the token with the request, e.g. from a browser extension or curl)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from api.auth import Caller, requires

router = APIRouter()


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request, caller: Caller = Depends(requires("operator"))) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    return schema


@router.get("/docs", include_in_schema=False)
async def swagger(caller: Caller = Depends(requires("operator"))) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="backout API")
