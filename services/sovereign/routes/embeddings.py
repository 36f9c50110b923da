"""POST /v1/embeddings, on backends that have them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.sovereign.catalogue import create_embeddings
from services.sovereign.deps import RouterDep
from services.sovereign.routes.bodies import json_response, read_body
from services.sovereign.schemas import EmbeddingRequest

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/embeddings")
async def post_embeddings(request: Request, routes: RouterDep) -> Response:
    body = await read_body(request, EmbeddingRequest)
    return json_response(await create_embeddings(routes, body))
