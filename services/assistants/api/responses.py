"""JSON responses rendered straight from the dicts the domain layer shapes."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from orjson import dumps

__all__ = ["json_response"]


def json_response(content: Any, status_code: int = 200) -> Response:
    """``content`` as JSON, bypassing the route's ``response_model``.

    FastAPI validates and re-serializes whatever a route returns through its response
    model, which on a page of 20 messages costs more than reading them from the database.
    A returned Response skips that; the route keeps ``response_model=`` so /openapi.json
    still documents the shape, which the domain layer's ``*_object`` functions build
    exactly (tests check responses against OpenAI's reference schemas).
    """
    return Response(dumps(content), status_code=status_code, media_type="application/json")
