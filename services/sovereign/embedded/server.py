"""The embedded runtime's OpenAI-compatible HTTP API over the bundled model.

`GET /health` is 503 while the model loads and 200 once it can answer.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from services.sovereign.embedded.grammar import constrain, tool_call_message
from services.sovereign.embedded.prompt import STOP, render_prompt
from services.sovereign.embedded.runner import LlamaRunner
from services.sovereign.errors import error_body

__all__ = ["MODEL_ID", "create_embedded_app"]

MODEL_ID = "gemma-3-270m"
DEFAULT_MAX_TOKENS = 128  # bounded so a CPU answers in seconds; clients may ask for more


def _params(body: dict[str, Any], n_ctx: int) -> dict[str, Any]:
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    stop = body.get("stop") or []
    params: dict[str, Any] = {
        "max_tokens": min(int(max_tokens), n_ctx // 2),
        # A tiny base model rambles when sampled hot, so greedy unless asked otherwise.
        "temperature": body.get("temperature", 0.0),
        "top_p": body.get("top_p", 1.0),
        "stop": STOP + ([stop] if isinstance(stop, str) else list(stop)),
    }
    if body.get("seed") is not None:
        params["seed"] = body["seed"]
    return params


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def create_embedded_app(runner: LlamaRunner) -> FastAPI:
    state: dict[str, Any] = {"status": "loading", "error": None}

    async def load() -> None:
        try:
            await asyncio.to_thread(runner.load)
            state["status"] = "ok"
        except Exception as exc:  # reported by /health; the supervisor decides what next
            state.update(status="error", error=repr(exc))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(load())
        yield
        task.cancel()

    app = FastAPI(title="sovereign-embedded", lifespan=lifespan, openapi_url=None)

    def not_ready() -> Response | None:
        if state["status"] == "ok":
            return None
        message = (
            "the embedded model is still loading"
            if state["status"] == "loading"
            else (f"the embedded model failed to load: {state['error']}")
        )
        return JSONResponse(error_body(message, "server_error", "model_not_ready"), 503)

    @app.get("/health")
    async def health() -> Response:
        code = 200 if state["status"] == "ok" else 503
        body = {"status": state["status"], "model": MODEL_ID, "error": state["error"]}
        return JSONResponse(body, code)

    @app.get("/v1/models")
    async def models() -> Response:
        data = [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "embedded"}]
        return JSONResponse({"object": "list", "data": data})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        if (unavailable := not_ready()) is not None:
            return unavailable
        try:
            body = json.loads(await request.body())
            messages = body["messages"]
            assert isinstance(messages, list) and messages
        except (ValueError, KeyError, AssertionError):
            error = error_body(
                "a JSON body with a non-empty 'messages' list is required", "invalid_request_error"
            )
            return JSONResponse(error, 400)
        params = _params(body, runner.n_ctx)
        # response_format and tools constrain decoding to a grammar (embedded/grammar.py).
        constraint, messages = constrain(body, messages, params, runner.n_ctx)
        prompt = render_prompt(messages)
        model = body.get("model") or MODEL_ID
        # Checked up front so a stream, too, gets a 400 instead of a broken stream.
        prompt_tokens = runner.count_tokens(prompt)
        if prompt_tokens >= runner.n_ctx:
            message = (
                f"the prompt is {prompt_tokens} tokens; this model's context is {runner.n_ctx}"
            )
            error = error_body(message, "invalid_request_error", "context_length_exceeded")
            return JSONResponse(error, 400)
        calls = constraint is not None and constraint.mode != "json"
        if body.get("stream") and not calls:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            frames = _stream(runner, prompt, prompt_tokens, params, model, include_usage)
            return StreamingResponse(frames, media_type="text/event-stream")
        try:
            result = await runner.complete(prompt, params)
        except ValueError as exc:  # llama.cpp's "Requested tokens exceed context window"
            error = error_body(str(exc), "invalid_request_error", "context_length_exceeded")
            return JSONResponse(error, 400)
        text = result.text.strip()
        message: dict[str, Any] = {"role": "assistant", "content": text}
        finish = result.finish_reason
        if calls and (call := tool_call_message(text, body, "call_" + secrets.token_hex(12))):
            message, finish = call, "tool_calls"
        completion = {
            "id": "chatcmpl-" + secrets.token_hex(12),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            },
        }
        if body.get("stream"):
            # A call is known only once it is whole: generated first, then sent as a stream.
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                _replay(completion, include_usage), media_type="text/event-stream"
            )
        return JSONResponse(completion)

    return app


async def _stream(
    runner: LlamaRunner,
    prompt: str,
    prompt_tokens: int,
    params: dict[str, Any],
    model: str,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    head = {
        "id": "chatcmpl-" + secrets.token_hex(12),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse(
            {
                **head,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
        )

    yield chunk({"role": "assistant", "content": ""})
    completion_tokens = 0
    finish = "stop"
    leading = True
    try:
        async for piece in runner.stream(prompt, params):
            completion_tokens += 1
            text = piece.text.lstrip() if leading else piece.text  # "Answer: 4" -> "4"
            if text:
                leading = False
                yield chunk({"content": text})
            if piece.finish_reason:
                finish = piece.finish_reason
    except Exception as exc:
        yield _sse(error_body(f"generation failed: {exc!r}", "server_error"))
        return
    yield chunk({}, finish)
    if include_usage:
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        yield _sse({**head, "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


async def _replay(completion: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
    """A finished completion as the chunks of a stream."""
    head = {k: completion[k] for k in ("id", "created", "model")}
    head["object"] = "chat.completion.chunk"
    choice = completion["choices"][0]
    message = choice["message"]
    delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(message["tool_calls"])]
    for d, finish in ((delta, None), ({}, choice["finish_reason"])):
        yield _sse({**head, "choices": [{"index": 0, "delta": d, "finish_reason": finish}]})
    if include_usage:
        yield _sse({**head, "choices": [], "usage": completion["usage"]})
    yield b"data: [DONE]\n\n"
