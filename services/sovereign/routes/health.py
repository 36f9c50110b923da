"""GET /health: no key needed; status, version, and whether each backend's models can answer."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from services.sovereign.catalogue import backend_health
from services.sovereign.deps import MonitorDep
from services.sovereign.routes.bodies import json_response

__all__ = ["router"]

router = APIRouter()


@router.get("/health")
async def get_health(monitor: MonitorDep) -> Response:
    # 200 while sovereign itself serves; a backend that cannot answer shows as "degraded".
    return json_response(await backend_health(monitor))
