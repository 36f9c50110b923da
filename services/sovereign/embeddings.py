"""POST /v1/embeddings through a backend, answered in OpenAI's shape whatever it sent."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

from services.sovereign.errors import UpstreamError
from services.sovereign.routing import Router

__all__ = ["base64_floats", "create_embeddings"]


def base64_floats(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _inputs(body: dict[str, Any]) -> int:
    value = body["input"]
    if isinstance(value, str) or (value and isinstance(value[0], int)):
        return 1
    return len(value)


def _vectors(result: Any, expected: int, where: str) -> list[list[float]]:
    """The vectors in input order; UpstreamError for anything that is not one per input."""
    items = result.get("data") if isinstance(result, dict) else None
    if not isinstance(items, list) or len(items) != expected:
        got = len(items) if isinstance(items, list) else "no"
        raise UpstreamError(f"{where} answered {got} embeddings for {expected} inputs")
    vectors: list[list[float] | None] = [None] * expected
    for position, item in enumerate(items):
        index = item.get("index", position) if isinstance(item, dict) else None
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < expected or vectors[index] is not None:
            raise UpstreamError(f"{where} answered embeddings with bad or repeated indexes")
        if not isinstance(vector, list) or not vector:
            raise UpstreamError(f"{where} answered an embedding that is not a list of numbers")
        if not all(isinstance(x, int | float) and math.isfinite(x) for x in vector):
            raise UpstreamError(f"{where} answered an embedding with a non-number in it")
        vectors[index] = vector
    if len({len(v) for v in vectors if v is not None}) != 1:
        raise UpstreamError(f"{where} answered embeddings of different lengths")
    return vectors  # type: ignore[return-value]


async def create_embeddings(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    route = router.resolve(body["model"])
    result = await route.backend.embeddings(body, route.model)
    vectors = _vectors(result, _inputs(body), route.backend.describe())
    base64_wanted = body.get("encoding_format") == "base64"
    usage = result.get("usage") if isinstance(result.get("usage"), dict) else {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64_floats(v) if base64_wanted else [float(x) for x in v],
            }
            for i, v in enumerate(vectors)
        ],
        "model": body["model"],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "total_tokens": int(usage.get("total_tokens") or prompt_tokens),
        },
    }
