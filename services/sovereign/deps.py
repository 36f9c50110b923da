"""FastAPI dependencies: the app's router, its backend monitor, and the optional key check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from services.sovereign.errors import AuthError
from services.sovereign.readiness import Monitor
from services.sovereign.routing import Router

__all__ = ["MonitorDep", "RouterDep", "require_key"]


async def get_router(request: Request) -> Router:
    return request.app.state.router


RouterDep = Annotated[Router, Depends(get_router)]


async def get_monitor(request: Request) -> Monitor:
    return request.app.state.monitor


MonitorDep = Annotated[Monitor, Depends(get_monitor)]


async def require_key(request: Request) -> None:
    """With SOVEREIGN_API_KEY set, every /v1 request carries it as Bearer (or X-API-Key).

    Async (like get_router) only so FastAPI does not run it on a worker thread.
    """
    expected: str | None = request.app.state.settings.api_key
    if not expected:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        token = request.headers.get("x-api-key", "")
    if not token or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise AuthError("Missing or incorrect API key; send it as 'Authorization: Bearer <key>'")
