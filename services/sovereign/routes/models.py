"""GET /v1/models and GET /v1/models/{model}: aggregated across backends."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from services.sovereign.catalogue import find_model, list_models
from services.sovereign.deps import RouterDep
from services.sovereign.routes.bodies import json_response

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/models")
async def get_models(routes: RouterDep) -> Response:
    return json_response({"object": "list", "data": await list_models(routes)})


@router.get("/v1/models/{model:path}")
async def get_model(model: str, routes: RouterDep) -> Response:
    return json_response(await find_model(routes, model))
