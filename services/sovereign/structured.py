"""Structured outputs held on every backend: a ``response_format`` JSON schema (or JSON
object) and strict function tools are checked against the answer, whatever produced it.

The embedded runtime constrains decoding to the schema and Ollama receives it as its
``format``; other backends are only asked. Every answer is parsed and validated here; one
that does not match is asked for once more, then it is a clear 502, never passed on.
A structured stream is answered whole, then sent as stream chunks, for the same reason.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from services.sovereign.chat import complete_chat
from services.sovereign.errors import BadRequest, UpstreamError
from services.sovereign.routing import Route

__all__ = [
    "StructuredOutputError",
    "check_answer",
    "needs_checking",
    "structured_complete",
    "structured_stream",
]

log = logging.getLogger("sovereign")

ATTEMPTS = 2


class StructuredOutputError(UpstreamError):
    code = "structured_output_invalid"


def _format(body: dict[str, Any]) -> dict[str, Any]:
    fmt = body.get("response_format")
    return fmt if isinstance(fmt, dict) else {}


def _strict_tools(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for tool in body.get("tools") or []:
        function = tool.get("function") or {}
        if tool.get("type") == "function" and function.get("strict") and function.get("name"):
            out[function["name"]] = function.get("parameters") or {"type": "object"}
    return out


def needs_checking(body: dict[str, Any]) -> bool:
    return _format(body).get("type") in ("json_schema", "json_object") or bool(_strict_tools(body))


def _validator(schema: Any, param: str) -> Draft202012Validator:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        message = f"'{param}' is not a valid JSON schema: {exc.message}"
        raise BadRequest(message, param=param) from None
    return Draft202012Validator(schema)


def validate_request(body: dict[str, Any]) -> None:
    """A schema that cannot be checked is the client's error, before any generation."""
    fmt = _format(body)
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise BadRequest(
                "'response_format.json_schema.schema' is required", param="response_format"
            )
        _validator(schema, "response_format.json_schema.schema")
    for name, schema in _strict_tools(body).items():
        _validator(schema, f"tools[{name}].function.parameters")


def _problem(value: Any, schema: dict[str, Any]) -> str | None:
    error = best_match(Draft202012Validator(schema).iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {error.message}"


def check_answer(result: dict[str, Any], body: dict[str, Any]) -> str | None:
    """What is wrong with a completion's answer for this request, or None."""
    choices = result.get("choices") or [{}]
    message = choices[0].get("message") or {}
    strict = _strict_tools(body)
    calls = message.get("tool_calls") or []
    for call in calls:
        function = call.get("function") or {}
        if function.get("name") not in strict:
            continue
        try:
            arguments = json.loads(function.get("arguments") or "")
        except ValueError:
            return f"the arguments of {function.get('name')} are not JSON"
        if (problem := _problem(arguments, strict[function["name"]])) is not None:
            return f"the arguments of {function['name']} do not match its parameters {problem}"
    if calls:
        return None  # a function call instead of an answer is the model's choice to make
    fmt = _format(body)
    if fmt.get("type") not in ("json_schema", "json_object"):
        return None
    content = message.get("content")
    try:
        value = json.loads(content or "")
    except (TypeError, ValueError):
        return f"the answer is not JSON: {str(content)[:120]!r}"
    if fmt["type"] == "json_object":
        return None if isinstance(value, dict) else "the answer is not a JSON object"
    problem = _problem(value, (fmt.get("json_schema") or {}).get("schema") or {})
    return None if problem is None else f"the answer does not match the schema {problem}"


async def structured_complete(route: Route, body: dict[str, Any]) -> dict[str, Any]:
    validate_request(body)
    request = {**body, "stream": False}
    request.pop("stream_options", None)
    problem = ""
    for attempt in range(1, ATTEMPTS + 1):
        result = await complete_chat(route, request)
        problem = check_answer(result, body) or ""
        if not problem:
            return result
        log.warning("structured answer %d/%d rejected: %s", attempt, ATTEMPTS, problem)
    raise StructuredOutputError(
        f"{route.backend.describe()} gave no answer matching the requested structure in "
        f"{ATTEMPTS} attempts: {problem}"
    )


def _chunk(result: dict[str, Any], delta: dict[str, Any] | None, finish: str | None) -> bytes:
    """A stream chunk of ``result``: one carrying ``delta``, or (None) its usage."""
    chunk: dict[str, Any] = {
        "id": result.get("id"),
        "object": "chat.completion.chunk",
        "created": result.get("created") or int(time.time()),
        "model": result.get("model"),
        "choices": [],
    }
    if delta is None:
        chunk["usage"] = result.get("usage")
    else:
        chunk["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


async def structured_stream(route: Route, body: dict[str, Any]) -> AsyncGenerator[bytes, None]:
    """Checked before the stream starts, so a failure is an HTTP status, not a broken stream."""
    result = await structured_complete(route, body)

    async def frames() -> AsyncGenerator[bytes, None]:
        choice = (result.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("tool_calls"):
            delta["tool_calls"] = [
                {"index": i, **call} for i, call in enumerate(message["tool_calls"])
            ]
        yield _chunk(result, delta, None)
        yield _chunk(result, {}, choice.get("finish_reason") or "stop")
        if (body.get("stream_options") or {}).get("include_usage") and result.get("usage"):
            yield _chunk(result, None, None)
        yield b"data: [DONE]\n\n"

    return frames()
