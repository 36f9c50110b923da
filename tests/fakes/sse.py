"""Parse a server-sent-events body the way the tests need it: one item per `data:` line."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["sse_data"]


def sse_data(body: str) -> list[Any]:
    """Each `data:` payload, JSON-decoded, with `[DONE]` kept as the string "[DONE]"."""
    out: list[Any] = []
    for line in body.splitlines():
        if line.startswith("data:"):
            payload = line[5:].strip()
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out
