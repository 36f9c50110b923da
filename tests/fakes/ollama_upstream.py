"""A scripted Ollama-compatible upstream (native /api endpoints, NDJSON streams) for tests.

    with run_ollama_upstream({"models": ["qwen2.5-coder:7b"], "responses": [...]}) as up:
        up.url          # what OLLAMA_HOST would point at
        up.requests()   # what it received (see tests.fakes.openai_upstream)

Endpoints: POST /api/chat (NDJSON stream unless "stream": false), GET /api/tags,
POST /api/embed, GET /api/version, GET / ("Ollama is running"), GET /health, GET /_requests.
The script format is the one documented in `tests.fakes.openai_upstream`, with Ollama's
shapes: text chunks are `message.content` lines, every tool call of a response arrives whole
in one line (arguments as an object, as Ollama sends them), the last line has `done: true`,
`done_reason` and `prompt_eval_count` / `eval_count`; `error_after` sends `{"error": "..."}`.
A chat or embed request for a model not in "models" gets Ollama's 404 "not found, try
pulling it first" without consuming a response. POST /api/embed takes the script's
"embedding_faults" (see openai_upstream): "missing_one", "error_500", "crash", and
"too_long" (Ollama's 400 for an input over the context when truncate is false).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.openai_upstream import fake_vector
from tests.fakes.process import FakeUpstream, run_fake, serve_app_main
from tests.fakes.script import (
    RequestLog,
    ScriptedResponse,
    Scripts,
    crash_now,
    embedding_fault,
    last_user_text,
    paced_stream,
    wait_unless_disconnected,
)

__all__ = ["build_app", "run_ollama_upstream"]


@contextmanager
def run_ollama_upstream(script: Any) -> Iterator[FakeUpstream]:
    """Run the scripted Ollama-compatible fake as a child process on a free port."""
    with run_fake("tests.fakes.ollama_upstream", script, "") as fake:
        yield fake


def _line(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def _tool_calls(response: ScriptedResponse) -> list[dict[str, Any]]:
    calls = []
    for index, call in enumerate(response.tool_calls):
        function: dict[str, Any] = {"name": call.name, "arguments": json.loads(call.arguments)}
        if not response.omit_index:
            function["index"] = index
        calls.append({"function": function})
    return calls


def _done_fields(response: ScriptedResponse, prompt_chars: int) -> dict[str, Any]:
    usage = response.usage_for(prompt_chars)
    reason = response.finish_reason or "stop"  # Ollama says "stop" even after tool calls
    fields: dict[str, Any] = {"done": True, "done_reason": reason, "total_duration": 1000}
    if not response.no_usage:
        fields["prompt_eval_count"] = usage["prompt_tokens"]
        fields["eval_count"] = usage["completion_tokens"]
    return fields


def stream_lines(response: ScriptedResponse, model: str, prompt_chars: int) -> list[dict]:
    def line(message: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"model": model, "created_at": _now(), "message": message, **extra}

    lines = [line({"role": "assistant", "content": piece}, done=False) for piece in response.pieces]
    if response.tool_calls:
        message = {"role": "assistant", "content": "", "tool_calls": _tool_calls(response)}
        lines.append(line(message, done=False))
    lines.append(line({"role": "assistant", "content": ""}, **_done_fields(response, prompt_chars)))
    return lines


def build_app(raw_script: Any) -> Starlette:
    scripts = Scripts.parse(raw_script)
    log = RequestLog()

    def not_pulled(model: str) -> Response | None:
        if model in scripts.models:
            return None
        error = f'model "{model}" not found, try pulling it first'
        return JSONResponse({"error": error}, status_code=404)

    async def chat(request: Request) -> Response:
        body = await request.json()
        entry = log.add(request.method, request.url.path, dict(request.headers), body)
        model = body.get("model", "")
        if (missing := not_pulled(model)) is not None:
            return missing
        response = scripts.take(last_user_text(body.get("messages", [])))
        if response is None:
            return JSONResponse({"error": "script exhausted"}, status_code=500)
        if response.delay and not await wait_unless_disconnected(request, response.delay):
            entry["cancelled"] = True
            return Response(status_code=499)
        if response.crash:
            crash_now()
        if response.status >= 400:
            message = (response.error or {}).get("message", "scripted error")
            return JSONResponse({"error": message}, status_code=response.status)
        prompt_chars = len(json.dumps(body.get("messages", [])))
        if body.get("stream") is False:
            entry["completed"] = True
            message = {"role": "assistant", "content": response.text}
            if response.tool_calls:
                message["tool_calls"] = _tool_calls(response)
            done = _done_fields(response, prompt_chars)
            return JSONResponse({"model": model, "created_at": _now(), "message": message, **done})
        frames = [_line(x) for x in stream_lines(response, model, prompt_chars)]
        error = (response.error or {}).get("message", "scripted mid-stream error")
        stream = paced_stream(
            response,
            frames,
            error_frame=_line({"error": error}),
            malformed_frame=b'{"model": "x", "message": {\n',
            done_frame=None,
            entry=entry,
        )
        return StreamingResponse(stream, media_type="application/x-ndjson")

    async def tags(request: Request) -> Response:
        log.add(request.method, request.url.path, dict(request.headers), None)
        models = [
            {"name": m, "model": m, "modified_at": _now(), "size": 1, "digest": "0" * 64}
            for m in scripts.models
        ]
        return JSONResponse({"models": models})

    async def embed(request: Request) -> Response:
        body = await request.json()
        log.add(request.method, request.url.path, dict(request.headers), body)
        if (missing := not_pulled(body.get("model", ""))) is not None:
            return missing
        inputs = body.get("input", [])
        inputs = [inputs] if isinstance(inputs, str) else inputs
        fault = embedding_fault(scripts, inputs)
        if fault == "crash":
            crash_now()
        if fault == "error_500":
            return JSONResponse({"error": "embedding model crashed"}, status_code=500)
        if fault == "too_long" and body.get("truncate") is False:
            error = "the input length exceeds the context length"
            return JSONResponse({"error": error}, status_code=400)
        vectors = [fake_vector(str(text)) for text in inputs]
        if fault == "missing_one":
            vectors = vectors[:-1]
        return JSONResponse(
            {"model": body["model"], "embeddings": vectors, "prompt_eval_count": len(inputs)}
        )

    async def version(request: Request) -> Response:
        return JSONResponse({"version": "0.0.0-fake"})

    async def root(request: Request) -> Response:
        return PlainTextResponse("Ollama is running")

    async def requests(request: Request) -> Response:
        return JSONResponse(log.entries)

    return Starlette(
        routes=[
            Route("/api/chat", chat, methods=["POST"]),
            Route("/api/tags", tags),
            Route("/api/embed", embed, methods=["POST"]),
            Route("/api/version", version),
            Route("/", root),
            Route("/health", root),
            Route("/_requests", requests),
        ]
    )


if __name__ == "__main__":
    serve_app_main(build_app)
