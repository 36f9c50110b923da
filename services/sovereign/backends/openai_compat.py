"""A backend speaking OpenAI's chat-completions API (llama.cpp server, vLLM, LM Studio, ...)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

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

    async def stream(self, body: dict[str, Any], model: str) -> AsyncIterator[Event]:
        # Usage is always asked for; the client gets it only if it asked too.
        payload = {**body, "model": model, "stream": True}
        payload["stream_options"] = {"include_usage": True}
        response = await self.open_stream("/chat/completions", payload, model)
        finished = False
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments, "event:" lines
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                chunk = parse_json_line(data, self)
                if not isinstance(chunk, dict):
                    raise UpstreamError(f"{self.describe()} sent a chunk that is not an object")
                if chunk.get("error"):
                    error = chunk["error"]
                    message = error.get("message") if isinstance(error, dict) else str(error)
                    raise UpstreamError(
                        f"{self.describe()} failed mid-stream: {message}",
                        code="upstream_stream_error",
                    )
                for event in chunk_events(chunk):
                    if type(event) is Finish and event.reason:
                        finished = True
                    yield event
        except httpx.HTTPError as exc:
            raise self.transport_error(exc) from exc
        finally:
            await response.aclose()
        # The connection closed without [DONE]. An answer that already has its finish_reason
        # is complete (some servers skip [DONE]); anything else was cut short.
        if not finished:
            raise UpstreamError(
                f"{self.describe()} ended the stream early, before it finished the answer",
                code="upstream_stream_truncated",
            )

    async def list_models(self) -> list[str]:
        result = await self.request_json("GET", "/models", limit=self.timeouts.connect * 2)
        return [m["id"] for m in (result or {}).get("data", []) if isinstance(m, dict)]

    async def embeddings(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        return await self.request_json(
            "POST",
            "/embeddings",
            json_body={**body, "model": model},
            limit=self.timeouts.response,
            model=model,
        )

    async def probe(self, limit: float) -> None:
        try:
            await self.request_json("GET", "/models", limit=limit)
        except UpstreamStatusError as exc:
            # Some servers lack /v1/models but still answer: that is reachable.
            if exc.upstream_status != 404:
                raise


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
