"""The embedded runtime's OpenAI-compatible HTTP API over the bundled models.

`GET /health` is 503 while the models load and warm up, and 200 once they have answered
(the chat model generated a token, the default embedder embedded a text); it names the
models. Embedders other than the default load on their first request.
A failure while loading or warming up ends the process, so a supervisor sees it at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from services.sovereign.embedded.embedder import EmbedderError
from services.sovereign.embedded.embedding_models import EmbeddingModel, names_of
from services.sovereign.embedded.grammar import constrain, tool_call_message
from services.sovereign.embedded.prompt import STOP, PromptError, render_prompt
from services.sovereign.embedded.runner import LlamaRunner
from services.sovereign.embeddings import base64_floats
from services.sovereign.errors import BadRequest, ModelNotFound, SovereignError, error_body
from services.sovereign.validation import check_chat_request, check_embedding_request

__all__ = ["MODEL_ID", "create_embedded_app"]

log = logging.getLogger("sovereign.embedded")

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


def _error(exc: SovereignError) -> Response:
    return JSONResponse(exc.body(), exc.status)


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise BadRequest("The request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    return body


def create_embedded_app(runner: LlamaRunner, embedders: list[EmbeddingModel]) -> FastAPI:
    """The first of ``embedders`` is the default, named in ``/health`` as ``embedding``."""
    state: dict[str, Any] = {"status": "loading", "warmup_s": {}}
    by_name = {name.lower(): model for model in embedders for name in names_of(model)}

    async def load() -> None:
        try:
            state["warmup_s"]["chat"] = round(await runner.load_and_warm_up(), 2)
            # Only the default: the others load on their first request, since most setups
            # never ask for them and MiniLM holds about 200 MB once loaded.
            default = embedders[0]
            state["warmup_s"][default.model_id] = round(await default.load_and_warm_up(), 2)
        except Exception as exc:
            # Serving 503 forever would hide the fault; exiting shows it to the supervisor.
            message = f"sovereign-embedded: cannot load or warm up the models: {exc!r}"
            print(message, file=sys.stderr)
            sys.stderr.flush()
            os._exit(1)
        state["status"] = "ok"
        log.info("models ready: %s", state["warmup_s"])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(load())
        yield
        task.cancel()
        runner.worker.shutdown()
        for model in embedders:
            model.worker.shutdown()

    app = FastAPI(title="sovereign-embedded", lifespan=lifespan, openapi_url=None)

    def not_ready() -> Response | None:
        if state["status"] == "ok":
            return None
        error = error_body("the embedded models are still loading", "server_error")
        error["error"]["code"] = "model_not_ready"
        return JSONResponse(error, 503)

    @app.exception_handler(SovereignError)
    async def sovereign_error(request: Request, exc: SovereignError) -> Response:
        return _error(exc)

    @app.get("/health")
    async def health() -> Response:
        ready = state["status"] == "ok"
        embedding = [
            {
                "id": model.model_id,
                "file": model.model_path.name,
                "dimensions": model.dimensions,
                "ready": ready,
            }
            for model in embedders
        ]
        body = {
            "status": state["status"],
            "model": MODEL_ID,
            "models": {
                "chat": {"id": MODEL_ID, "file": runner.model_path.name, "ready": ready},
                "embedding": embedding[0],
                "embeddings": embedding,
            },
            "warmup_s": state["warmup_s"],
        }
        return JSONResponse(body, 200 if ready else 503)

    @app.get("/v1/models")
    async def models() -> Response:
        if (unavailable := not_ready()) is not None:
            return unavailable
        data = [
            {"id": model, "object": "model", "created": 0, "owned_by": "embedded"}
            for model in (MODEL_ID, *(m.model_id for m in embedders))
        ]
        return JSONResponse({"object": "list", "data": data})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        if (unavailable := not_ready()) is not None:
            return unavailable
        body = await _json(request)
        check_chat_request(body)
        params = _params(body, runner.n_ctx)
        # response_format and tools constrain decoding to a grammar (embedded/grammar.py), so
        # a forced call, too, is one the model can make.
        constraint, messages = constrain(body, body["messages"], params, runner.n_ctx)
        try:
            prompt = render_prompt(messages)
        except PromptError as exc:
            raise BadRequest(str(exc), param=exc.param) from exc
        model = body.get("model") or MODEL_ID
        # Checked up front so a stream, too, gets a 400 instead of a broken stream.
        prompt_tokens = await runner.count_tokens(prompt)
        if prompt_tokens >= runner.n_ctx:
            raise BadRequest(
                f"the prompt is {prompt_tokens} tokens; this model's context is {runner.n_ctx}",
                code="context_length_exceeded",
                param="messages",
            )
        calls = constraint is not None and constraint.mode != "json"
        if body.get("stream") and not calls:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            frames = _stream(runner, prompt, prompt_tokens, params, model, include_usage)
            return StreamingResponse(frames, media_type="text/event-stream")
        try:
            result = await runner.complete(prompt, params)
        except ValueError as exc:  # llama.cpp's "Requested tokens exceed context window"
            raise BadRequest(str(exc), code="context_length_exceeded") from exc
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

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        if (unavailable := not_ready()) is not None:
            return unavailable
        body = await _json(request)
        check_embedding_request(body)
        model = _embedding_model(body, by_name)
        texts = _embedding_texts(body)
        try:
            result = await model.embed(texts)
        except EmbedderError as exc:  # one served beside the default, failing its first load
            raise SovereignError(str(exc), code="model_not_loaded") from exc
        data = [
            {"object": "embedding", "index": i, "embedding": vector}
            for i, vector in enumerate(result.vectors)
        ]
        if body.get("encoding_format") == "base64":
            for item in data:
                item["embedding"] = base64_floats(item["embedding"])
        usage = {"prompt_tokens": result.tokens, "total_tokens": result.tokens}
        answer = {"object": "list", "data": data, "model": body["model"], "usage": usage}
        return JSONResponse(answer)

    return app


def _embedding_model(body: dict[str, Any], by_name: dict[str, EmbeddingModel]) -> EmbeddingModel:
    model = by_name.get(body["model"].lower())
    if model is None:
        served = "', '".join(dict.fromkeys(m.model_id for m in by_name.values()))
        raise ModelNotFound(
            f"The model '{body['model']}' does not exist here; embeddings come from '{served}'"
        )
    dimensions = body.get("dimensions")
    if dimensions is not None and dimensions != model.dimensions:
        raise BadRequest(
            f"{model.model_id} makes {model.dimensions}-dimensional vectors and cannot "
            "shorten them",
            param="dimensions",
        )
    return model


def _embedding_texts(body: dict[str, Any]) -> list[str]:
    texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
    if not all(isinstance(text, str) for text in texts):
        # Token ids from another tokenizer (tiktoken's, say) would embed silently wrong text.
        raise BadRequest(
            "token arrays are not accepted: this embedding model has its own vocabulary; "
            "send the text",
            param="input",
        )
    return texts


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
