"""A backend speaking OpenAI's chat-completions API (llama.cpp server, vLLM, LM Studio, ...)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from services.sovereign.backends.base import Backend, parse_json_line
from services.sovereign.errors import UpstreamError, UpstreamStatusError
from services.sovereign.events import ContentDelta, Event, Finish, ToolCallDelta, Usage

__all__ = ["OpenAICompatBackend"]


def _base_url(url: str) -> str:
    # Accept the server's root or its /v1 base, as OpenAI clients do.
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class OpenAICompatBackend(Backend):
    kind = "OpenAI-compatible"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.url = _base_url(self.url)

    async def complete(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        payload = {**body, "model": model, "stream": False}
        payload.pop("stream_options", None)
        result = await self.request_json(
            "POST",
            "/chat/completions",
            json_body=payload,
            limit=self.timeouts.response,
            model=model,
        )
        if not isinstance(result, dict) or "choices" not in result:
            raise UpstreamError(f"{self.describe()} answered without choices")
        return result

    def stream(self, body: dict[str, Any], model: str) -> AsyncIterator[list[Event]]:
        # Usage is always asked for; the client gets it only if it asked too.
        payload = {**body, "model": model, "stream": True}
        payload["stream_options"] = {"include_usage": True}
        return self.relay("/chat/completions", payload, model, SSEChunkParser(self))

    async def embeddings(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        return await self.request_json(
            "POST",
            "/embeddings",
            # Floats always: sovereign checks them and encodes base64 itself when asked.
            json_body={**body, "model": model, "encoding_format": "float"},
            limit=self.timeouts.response,
            model=model,
        )

    async def readiness(self, limit: float) -> tuple[bool, list[str], str | None]:
        try:
            result = await self.request_json("GET", "/models", limit=limit)
        except UpstreamStatusError as exc:
            # Some servers lack /v1/models but still answer; a 503 is a model still loading.
            return True, [], None if exc.upstream_status == 404 else exc.message
        models = [m["id"] for m in (result or {}).get("data", []) if isinstance(m, dict)]
        return True, models, None


class SSEChunkParser:
    """OpenAI's SSE: `data: {chunk}` lines, `data: [DONE]` at the end."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        # An answer whose finish_reason arrived is complete even if [DONE] never does
        # (some servers skip it); one without was cut short.
        self.complete = False

    def feed(self, line: str, out: list[Event]) -> bool:
        if not line.startswith("data:"):
            return False  # blank separators, comments, "event:" lines
        data = line[5:].strip()
        if data == "[DONE]":
            return True
        chunk = parse_json_line(data, self.backend)
        if not isinstance(chunk, dict):
            raise UpstreamError(f"{self.backend.describe()} sent a chunk that is not an object")
        if chunk.get("error"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise UpstreamError(
                f"{self.backend.describe()} failed mid-stream: {message}",
                code="upstream_stream_error",
            )
        events = chunk_events(chunk)
        for event in events:
            if type(event) is Finish and event.reason:
                self.complete = True
        out.extend(events)
        return False


def chunk_events(chunk: dict[str, Any]) -> list[Event]:
    """The events of one upstream chunk (only choice 0: sovereign serves n=1)."""
    events: list[Event] = []
    for choice in chunk.get("choices") or ():
        if choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if content:
            events.append(ContentDelta(content))
        for call in delta.get("tool_calls") or ():
            function = call.get("function") or {}
            arguments = function.get("arguments")
            if not isinstance(arguments, str):
                # Some servers send the arguments as an object in one piece.
                arguments = json.dumps(arguments) if arguments is not None else ""
            events.append(
                ToolCallDelta(call.get("index"), call.get("id"), function.get("name"), arguments)
            )
        if choice.get("finish_reason"):
            events.append(Finish(choice["finish_reason"]))
    usage = chunk.get("usage")
    if usage:
        events.append(
            Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        )
    return events
