"""GET /v1/models and GET /v1/models/{model}: aggregated across backends, each with `ready`."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from services.sovereign.catalogue import find_model, list_models
from services.sovereign.deps import MonitorDep
from services.sovereign.routes.bodies import json_response

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/models")
async def get_models(monitor: MonitorDep) -> Response:
    data, statuses = await list_models(monitor)
    # `backends` is an extra beside OpenAI's list: whether each backend can answer now.
    backends = {name: {"ready": s.ready, "error": s.error} for name, s in statuses.items()}
    return json_response({"object": "list", "data": data, "backends": backends})


@router.get("/v1/models/{model:path}")
async def get_model(model: str, monitor: MonitorDep) -> Response:
    return json_response(await find_model(monitor, model))
