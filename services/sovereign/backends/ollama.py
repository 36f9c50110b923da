"""Ollama through its native API, which gives what its /v1 layer hides: keep_alive,
num_ctx and the other runtime options, and a clear "model not pulled" error.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from services.sovereign.backends.base import Backend, parse_json_line, upstream_message
from services.sovereign.config import BackendConfig
from services.sovereign.errors import BadRequest, ModelNotFound, SovereignError, UpstreamError
from services.sovereign.events import ContentDelta, Event, Finish, ToolCallDelta, Usage

__all__ = ["OllamaBackend", "ollama_messages", "ollama_payload"]

# OpenAI request fields that are Ollama runtime options under the same name.
_SAME_NAME_OPTIONS = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")


def _content(content: Any) -> tuple[str, list[str]]:
    """Text and base64 images of an OpenAI message content (a string or a list of parts)."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[str] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            texts.append(part.get("text", ""))
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if not url.startswith("data:") or "," not in url:
                raise BadRequest("Ollama needs images inline, as data: URLs", param="messages")
            images.append(url.split(",", 1)[1])
    return "\n".join(texts), images


def ollama_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tool_names: dict[str, str] = {}  # tool_call_id -> function name, for tool results
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        text, images = _content(message.get("content"))
        converted: dict[str, Any] = {
            "role": "system" if role == "developer" else role,
            "content": text,
        }
        if images:
            converted["images"] = images
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = call.get("function") or {}
                arguments = function.get("arguments") or "{}"
                if isinstance(arguments, str):
                    try:
                        arguments = json.loads(arguments)
                    except ValueError:
                        arguments = {"arguments": arguments}  # Ollama insists on an object
                tool_names[call.get("id", "")] = function.get("name", "")
                calls.append({"function": {"name": function.get("name"), "arguments": arguments}})
            converted["tool_calls"] = calls
        if role == "tool" and message.get("tool_call_id") in tool_names:
            converted["tool_name"] = tool_names[message["tool_call_id"]]
        out.append(converted)
    return out


def ollama_payload(
    body: dict[str, Any], model: str, config: BackendConfig, stream: bool
) -> dict[str, Any]:
    options: dict[str, Any] = {k: body[k] for k in _SAME_NAME_OPTIONS if body.get(k) is not None}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        options["num_predict"] = max_tokens
    stop = body.get("stop")
    if stop:
        options["stop"] = [stop] if isinstance(stop, str) else stop
    if config.num_ctx:
        options["num_ctx"] = config.num_ctx
    # Ollama's own options may be sent as an extra body field, and win.
    options.update(body.get("options") or {})
    payload: dict[str, Any] = {
        "model": model,
        "messages": ollama_messages(body.get("messages") or []),
        "stream": stream,
    }
    if options:
        payload["options"] = options
    keep_alive = body.get("keep_alive", config.keep_alive)
    if keep_alive is not None:
        payload["keep_alive"] = keep_alive
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    if tools and body.get("tool_choice") != "none":
        payload["tools"] = tools
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        payload["format"] = "json"
    elif response_format.get("type") == "json_schema":
        payload["format"] = (response_format.get("json_schema") or {}).get("schema", "json")
    return payload


def _arguments(function: dict[str, Any]) -> str:
    arguments = function.get("arguments")
    return arguments if isinstance(arguments, str) else json.dumps(arguments or {})


def _finish(done_reason: str | None) -> str:
    return "length" if done_reason == "length" else "stop"


class NDJSONParser:
    """Ollama's stream: one JSON object a line, the last one with `done: true`."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.complete = False
        self.calls = 0

    def feed(self, line: str, out: list[Event]) -> bool:
        if not line.strip():
            return False
        item = parse_json_line(line, self.backend)
        if not isinstance(item, dict):
            raise UpstreamError(f"{self.backend.describe()} sent a line that is not an object")
        if item.get("error"):
            raise UpstreamError(
                f"{self.backend.describe()} failed mid-stream: {item['error']}",
                code="upstream_stream_error",
            )
        message = item.get("message") or {}
        if message.get("content"):
            out.append(ContentDelta(message["content"]))
        # Ollama sends each tool call whole; it becomes a head and one fragment.
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            out.append(ToolCallDelta(self.calls, call.get("id"), function.get("name"), ""))
            out.append(ToolCallDelta(self.calls, None, None, _arguments(function)))
            self.calls += 1
        if item.get("done"):
            out.append(Finish(_finish(item.get("done_reason"))))
            out.append(Usage(item.get("prompt_eval_count", 0), item.get("eval_count", 0)))
            self.complete = True
            return True
        return False


class OllamaBackend(Backend):
    kind = "Ollama"

    def status_error(self, response: httpx.Response, model: str) -> SovereignError:
        message = upstream_message(response) if response.is_stream_consumed else ""
        if response.status_code == 404 and model and "not found" in message.lower():
            return ModelNotFound(
                f"model '{model}' is not pulled on {self.describe()}; "
                f"pull it with: ollama pull {model}"
            )
        return super().status_error(response, model)

    async def complete(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        payload = ollama_payload(body, model, self.config, stream=False)
        result = await self.request_json(
            "POST", "/api/chat", json_body=payload, limit=self.timeouts.response, model=model
        )
        message = result.get("message") or {}
        calls = [
            {
                "id": call.get("id"),  # missing ids and types are filled in by normalising
                "function": {
                    "name": (call.get("function") or {}).get("name"),
                    "arguments": _arguments(call.get("function") or {}),
                },
            }
            for call in message.get("tool_calls") or []
        ]
        # OpenAI's shape: content is null, not "", when the answer is only tool calls.
        content = message.get("content") or (None if calls else "")
        out_message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            out_message["tool_calls"] = calls
        prompt, completion = result.get("prompt_eval_count", 0), result.get("eval_count", 0)
        return {
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": out_message,
                    "logprobs": None,
                    "finish_reason": _finish(result.get("done_reason")),
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    def stream(self, body: dict[str, Any], model: str) -> AsyncIterator[list[Event]]:
        payload = ollama_payload(body, model, self.config, stream=True)
        return self.relay("/api/chat", payload, model, NDJSONParser(self))

    async def embeddings(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        if not all(isinstance(text, str) for text in texts):
            raise BadRequest("Ollama embeds text: send strings, not token ids", param="input")
        # truncate=false: an input longer than the model's context is an error, not silently cut.
        payload: dict[str, Any] = {"model": model, "input": body["input"], "truncate": False}
        if body.get("dimensions"):
            payload["dimensions"] = body["dimensions"]
        if self.config.keep_alive is not None:
            payload["keep_alive"] = self.config.keep_alive
        result = await self.request_json(
            "POST", "/api/embed", json_body=payload, limit=self.timeouts.response, model=model
        )
        vectors = result.get("embeddings") or []
        tokens = int(result.get("prompt_eval_count") or 0)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": vector}
                for i, vector in enumerate(vectors)
            ],
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def readiness(self, limit: float) -> tuple[bool, list[str], str | None]:
        result = await self.request_json("GET", "/api/tags", limit=limit)
        models = [m.get("name") or m.get("model") for m in (result or {}).get("models", [])]
        if not models:
            return True, [], "no model is pulled yet; pull one with: ollama pull <model>"
        return True, models, None
