"""Routes whose JSON bodies orjson parses: every route takes the same JSON, and only JSON
a response can carry: a lone surrogate or nesting past ``MAX_DEPTH`` is a 400, and integers
past 64 bits become floats, as in JavaScript."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from json import JSONDecodeError
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from orjson import loads

__all__ = ["MAX_DEPTH", "JSONRoute", "parse_json"]

# orjson writes at most ~250 levels; the API's own shapes need a handful, JSON schemas in
# tool definitions a few dozen.
MAX_DEPTH = 64
UTF8_BOM = b"\xef\xbb\xbf"


def parse_json(body: bytes) -> Any:
    """``body`` parsed; a ``JSONDecodeError`` (which FastAPI reports as invalid JSON) for
    what is not JSON or nests deeper than ``MAX_DEPTH``."""
    if body.startswith(UTF8_BOM):  # which JSON senders must not add, but some do
        body = body[len(UTF8_BOM) :]
    value = loads(body)
    # Only a body with that many brackets can nest that deep: the walk is rarely needed.
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise JSONDecodeError(f"JSON nested more than {MAX_DEPTH} levels deep", "", 0)
    return value


def _depth(value: Any) -> int:
    deepest, level, pending = 0, 0, [(value, 1)]
    while pending:
        value, level = pending.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                pending.extend((item, level + 1) for item in value)
    return deepest


class _Request(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class JSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(_Request(request.scope, request.receive))

        return handle
