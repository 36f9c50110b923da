"""Reading request bodies and writing JSON answers without FastAPI's encoder overhead."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from services.sovereign.errors import BadRequest

__all__ = ["json_response", "read_body"]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


async def read_body(request: Request, check: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The JSON body as sent (so unknown fields are forwarded), checked by `check`."""
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise BadRequest("The request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    check(body)
    return body


def json_response(
    body: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        _dumps(body).encode(),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )
