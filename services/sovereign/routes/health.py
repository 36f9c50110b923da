"""GET /health: no key needed; status, version, and each backend's reachability."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from services.sovereign.catalogue import backend_health
from services.sovereign.deps import RouterDep
from services.sovereign.routes.bodies import json_response

__all__ = ["router"]

router = APIRouter()


@router.get("/health")
async def get_health(routes: RouterDep) -> Response:
    # 200 while sovereign itself serves; an unreachable backend shows as "degraded".
    return json_response(await backend_health(routes))
