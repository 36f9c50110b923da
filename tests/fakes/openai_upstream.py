"""A scripted OpenAI-compatible upstream server (real HTTP, its own process) for tests.

Start it from a test with `run_openai_upstream(script)`:

    with run_openai_upstream([{"text": "Hello there", "chunks": 3}]) as up:
        client = openai.OpenAI(base_url=up.base_url, api_key="x")   # up.base_url ends in /v1
        ...
        up.requests()   # what it received: [{"method", "path", "authorization", "body",
                        #   "completed": True/False/None, "cancelled": True if cut off}]

Endpoints: POST /v1/chat/completions (JSON, or SSE when "stream": true), GET /v1/models,
POST /v1/embeddings (deterministic vectors), GET /health, GET /_requests.

Script: a JSON list of responses (or {"responses": [...], "models": ["id", ...]}). Each chat
request consumes the first unconsumed response whose "match" is a substring of the last
user message (or that has no "match"). Nothing left -> HTTP 500 "script exhausted".
Fields of a response (all optional):
  match               substring of the last user message this response answers
  repeat              true: never consumed (for benchmarks)
  text, chunks        answer text, split into N content chunks (default 1)
  tokens              explicit list of content chunks (instead of text/chunks)
  tool_calls          [{"name", "arguments": str|obj, "id": str|null, "chunks": N}]; several
                      = parallel calls; arguments are split into N fragments (default 3)
  finish_reason       override (default "tool_calls" if tool calls else "stop")
  usage               {"prompt_tokens", "completion_tokens"} (default: estimated)
  status, error       HTTP error status and its error object (OpenAI error body shape)
  delay               seconds before answering at all (headers included)
  first_token_delay   seconds before the first chunk
  tokens_per_s        pace of chunks after the first
  stall               {"after_chunks": K, "seconds": S}: no bytes for S s before chunk K
  malformed_after     K: a chunk that is not valid JSON is sent before chunk K
  truncate_after      K: the stream ends cleanly before chunk K (no finish, no [DONE])
  omit_done           true: every chunk is sent but no `data: [DONE]`
  drop_after          K: the connection is aborted before chunk K
  error_after         K: `data: {"error": {...}}` is sent before chunk K, then the stream ends
  omit_index          true: tool-call deltas carry no "index" (as some servers send)
  vary_ids            true: every chunk has a different "id"
  usage_in_final_chunk true: usage rides on the finish chunk (llama.cpp style), not its own
  no_usage            true: never send usage, even with stream_options.include_usage
code_interpreter: a request offering a `code_interpreter` function is answered without the
script when its last user message holds a ```python fenced block: the model calls
code_interpreter with that code; once the tool answered, it replies "Output: <output>", with a
markdown link to every `[file written: /mnt/data/...]` the output mentions.
Chunk K counts every SSE chunk: the role chunk is 0, then content, tool-call and finish
chunks, then the usage chunk when it is asked for.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.process import FakeUpstream, run_fake, serve_app_main
from tests.fakes.script import (
    RequestLog,
    ScriptedResponse,
    Scripts,
    last_user_text,
    paced_stream,
    split_text,
    wait_unless_disconnected,
)

__all__ = ["build_app", "run_openai_upstream"]


@contextmanager
def run_openai_upstream(script: Any) -> Iterator[FakeUpstream]:
    """Run the scripted OpenAI-compatible fake as a child process on a free port."""
    with run_fake("tests.fakes.openai_upstream", script, "/v1") as fake:
        yield fake


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def stream_chunks(
    response: ScriptedResponse, model: str, include_usage: bool, prompt_chars: int
) -> list[dict[str, Any]]:
    """The chunk objects of a scripted streamed answer, before any fault is applied."""
    created = int(time.time())
    chunks: list[dict[str, Any]] = []

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        n = len(chunks)
        return {
            "id": f"chatcmpl-fake{n}" if response.vary_ids else "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    chunks.append(chunk({"role": "assistant", "content": ""}))
    for piece in response.pieces:
        chunks.append(chunk({"content": piece}))
    for index, call in enumerate(response.tool_calls):
        head: dict[str, Any] = {
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        if call.id is not None:
            head["id"] = call.id
        fragments = [head] + [
            {"function": {"arguments": frag}} for frag in split_text(call.arguments, call.chunks)
        ]
        for frag in fragments:
            if not response.omit_index:
                frag = {"index": index, **frag}
            chunks.append(chunk({"tool_calls": [frag]}))
    final = chunk({}, response.final_finish_reason())
    usage = response.usage_for(prompt_chars)
    if response.usage_in_final_chunk and not response.no_usage:
        final["usage"] = usage
    chunks.append(final)
    if include_usage and not response.usage_in_final_chunk and not response.no_usage:
        usage_chunk = chunk({})
        usage_chunk["choices"] = []
        usage_chunk["usage"] = usage
        chunks.append(usage_chunk)
    return chunks


def completion_body(response: ScriptedResponse, model: str, prompt_chars: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": response.text or None}
    if response.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id or f"call_{i}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for i, call in enumerate(response.tool_calls)
        ]
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": response.final_finish_reason(),
            }
        ],
    }
    if not response.no_usage:
        body["usage"] = response.usage_for(prompt_chars)
    return body


FENCED_PYTHON = re.compile(r"```python\n(.*?)```", re.DOTALL)
FILE_WRITTEN = re.compile(r"\[file written: (/mnt/data/[^\]]+)\]")


def code_interpreter_reply(body: dict[str, Any]) -> ScriptedResponse | None:
    """The model's move when code_interpreter is offered and the user sent Python (above)."""
    names = {(t.get("function") or {}).get("name") for t in body.get("tools") or ()}
    messages = body.get("messages") or []
    if "code_interpreter" not in names or not messages:
        return None
    last = messages[-1]
    if last.get("role") == "tool":
        output = str(last.get("content") or "")
        links = " ".join(
            f"[{path.rsplit('/', 1)[-1]}](sandbox:{path})" for path in FILE_WRITTEN.findall(output)
        )
        text = f"Output: {output}" + (f"\nDownload: {links}" if links else "")
        return ScriptedResponse.parse({"text": text, "chunks": 3})
    if last.get("role") != "user":
        return None
    found = FENCED_PYTHON.search(last_user_text(messages))
    if found is None:
        return None
    call = {"name": "code_interpreter", "arguments": {"code": found.group(1)}, "chunks": 4}
    return ScriptedResponse.parse({"tool_calls": [call]})


def build_app(raw_script: Any) -> Starlette:
    scripts = Scripts.parse(raw_script)
    log = RequestLog()

    async def chat(request: Request) -> Response:
        body = await request.json()
        entry = log.add(request.method, request.url.path, dict(request.headers), body)
        response = code_interpreter_reply(body) or scripts.take(
            last_user_text(body.get("messages", []))
        )
        if response is None:
            err = {"message": "script exhausted", "type": "server_error", "code": None}
            return JSONResponse({"error": err}, status_code=500)
        if response.delay and not await wait_unless_disconnected(request, response.delay):
            entry["cancelled"] = True
            return Response(status_code=499)
        if response.status >= 400:
            return JSONResponse({"error": response.error}, status_code=response.status)
        model = body.get("model", "fake-model")
        prompt_chars = len(json.dumps(body.get("messages", [])))
        if not body.get("stream"):
            entry["completed"] = True
            return JSONResponse(completion_body(response, model, prompt_chars))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        frames = [_sse(c) for c in stream_chunks(response, model, include_usage, prompt_chars)]
        error = response.error or {"message": "scripted mid-stream error", "type": "server_error"}
        stream = paced_stream(
            response,
            frames,
            error_frame=_sse({"error": error}),
            malformed_frame=b'data: {"id": "chatcmpl-fake", "choices": [{"delta": \n\n',
            done_frame=b"data: [DONE]\n\n",
            entry=entry,
        )
        return StreamingResponse(stream, media_type="text/event-stream")

    async def models(request: Request) -> Response:
        log.add(request.method, request.url.path, dict(request.headers), None)
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in scripts.models
        ]
        return JSONResponse({"object": "list", "data": data})

    async def embeddings(request: Request) -> Response:
        body = await request.json()
        log.add(request.method, request.url.path, dict(request.headers), body)
        inputs = body.get("input", [])
        inputs = [inputs] if isinstance(inputs, str) else inputs
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(str(text))}
            for i, text in enumerate(inputs)
        ]
        usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
        return JSONResponse(
            {"object": "list", "data": data, "model": body.get("model"), "usage": usage}
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def requests(request: Request) -> Response:
        return JSONResponse(log.entries)

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/health", health),
            Route("/_requests", requests),
        ]
    )


def fake_vector(text: str, dims: int = 8) -> list[float]:
    """A deterministic unit-ish vector derived from the text, so tests can compare."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255.0, 6) for b in digest[:dims]]


if __name__ == "__main__":
    serve_app_main(build_app)
