"""POST /v1/chat/completions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from services.sovereign.chat import complete_chat, stream_chat
from services.sovereign.deps import RouterDep
from services.sovereign.disconnect import until_disconnected
from services.sovereign.routes.bodies import json_response, read_body
from services.sovereign.validation import check_chat_request

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/chat/completions")
async def create_chat_completion(request: Request, routes: RouterDep) -> Response:
    body = await read_body(request, check_chat_request)
    route = routes.resolve(body["model"])
    headers = {"x-sovereign-backend": route.backend.name}
    if body.get("stream"):
        frames = await until_disconnected(request, stream_chat(route, body))
        headers |= {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(frames, media_type="text/event-stream", headers=headers)
    result = await until_disconnected(request, complete_chat(route, body))
    return json_response(result, headers=headers)
