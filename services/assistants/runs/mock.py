"""USE_MOCK_INFERENCE=true: an offline engine answering deterministically, no upstream at all.

It yields the same chunk objects an OpenAI-compatible upstream streams, so runs go through
the exact code path of the real engine.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["mock_chunks"]


def _answer(messages: list[dict[str, Any]]) -> str:
    last = messages[-1] if messages else {"role": "user", "content": ""}
    if last.get("role") == "tool":
        outputs = [m.get("content", "") for m in messages if m.get("role") == "tool"]
        return "(mock) The tools returned: " + "; ".join(outputs)
    content = last.get("content")
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return f"(mock) You said: {content or ''}"


async def mock_chunks(body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    text = _answer(body.get("messages", []))
    pieces = re.findall(r"\S+\s*", text) or [text]
    budget = body.get("max_tokens")
    finish = "stop"
    if budget is not None and len(pieces) > budget:
        pieces, finish = pieces[:budget], "length"

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "model": body.get("model", "mock"),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    yield chunk({"role": "assistant", "content": ""})
    for piece in pieces:
        await asyncio.sleep(0)
        yield chunk({"content": piece})
    yield chunk({}, finish)
    prompt = sum(len(str(m.get("content") or "")) for m in body.get("messages", [])) // 4 + 1
    yield {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": len(pieces),
            "total_tokens": prompt + len(pieces),
        },
    }
