"""POST /v1/embeddings, on every kind of backend."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.sovereign.deps import RouterDep
from services.sovereign.disconnect import until_disconnected
from services.sovereign.embeddings import create_embeddings
from services.sovereign.routes.bodies import json_response, read_body
from services.sovereign.validation import check_embedding_request

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/embeddings")
async def post_embeddings(request: Request, routes: RouterDep) -> Response:
    body = await read_body(request, check_embedding_request)
    route = routes.resolve(body["model"])
    result = await until_disconnected(request, create_embeddings(routes, body))
    return json_response(result, headers={"x-sovereign-backend": route.backend.name})
