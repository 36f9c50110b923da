"""POST /v1/chat/completions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from services.sovereign.chat import complete_chat, stream_chat
from services.sovereign.deps import RouterDep
from services.sovereign.disconnect import until_disconnected
from services.sovereign.routes.bodies import json_response, read_body
from services.sovereign.structured import needs_checking, structured_complete, structured_stream
from services.sovereign.validation import check_chat_request

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/chat/completions")
async def create_chat_completion(request: Request, routes: RouterDep) -> Response:
    body = await read_body(request, check_chat_request)
    route = routes.resolve(body["model"])
    headers = {"x-sovereign-backend": route.backend.name}
    # A JSON schema or strict tools: answered whole and checked (structured.py).
    checked = needs_checking(body)
    if body.get("stream"):
        start = structured_stream if checked else stream_chat
        frames = await until_disconnected(request, start(route, body))
        headers |= {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(frames, media_type="text/event-stream", headers=headers)
    complete = structured_complete if checked else complete_chat
    result = await until_disconnected(request, complete(route, body))
    return json_response(result, headers=headers)
