"""What OpenAI checks in a request before any model runs, checked here the same way.

Each check raises BadRequest with OpenAI's wording, `param` and `code`, so a bad request is
a 400 before any backend is called, streamed or not. Bodies are not changed.
"""

from __future__ import annotations

import re
from typing import Any

from services.sovereign.errors import BadRequest

__all__ = ["check_chat_request", "check_embedding_request"]

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
PART_TYPES = {
    "system": ("text",),
    "developer": ("text",),
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
    "tool": ("text",),
}
TOOL_TYPES = ("function", "custom")
TOOL_CHOICES = ("none", "auto", "required")
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_EMBEDDING_INPUTS = 2048


def _supported(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return (
        ", ".join(quoted[:-1]) + f", and {quoted[-1]}" if len(quoted) > 2 else " and ".join(quoted)
    )


def _invalid_value(value: Any, param: str, values: tuple[str, ...]) -> BadRequest:
    return BadRequest(
        f"Invalid value: {value!r}. Supported values are: {_supported(values)}.",
        param=param,
        code="invalid_value",
    )


def _invalid_type(param: str, expected: str, value: Any) -> BadRequest:
    return BadRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _missing(param: str) -> BadRequest:
    return BadRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _kind(value: Any) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a decimal"}
    names |= {list: "an array", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _check_content(message: dict[str, Any], role: str, param: str) -> None:
    content = message.get("content")
    if content is None:
        calls = message.get("tool_calls") or message.get("function_call")
        if role == "function" or (role == "assistant" and calls):
            return
        raise _missing(f"{param}.content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid_type(f"{param}.content", "a string or an array of content parts", content)
    allowed = PART_TYPES.get(role, ("text",))
    for j, part in enumerate(content):
        where = f"{param}.content[{j}]"
        if not isinstance(part, dict):
            raise _invalid_type(where, "an object", part)
        if part.get("type") not in allowed:
            raise _invalid_value(part.get("type"), f"{where}.type", allowed)


def _check_tool_calls(calls: Any, param: str) -> None:
    if not isinstance(calls, list):
        raise _invalid_type(param, "an array", calls)
    for j, call in enumerate(calls):
        where = f"{param}[{j}]"
        if not isinstance(call, dict):
            raise _invalid_type(where, "an object", call)
        if not isinstance(call.get("id"), str):
            raise _missing(f"{where}.id")
        kind = call.get("type", "function")
        if kind not in TOOL_TYPES:
            raise _invalid_value(kind, f"{where}.type", TOOL_TYPES)
        if kind == "function":
            function = call.get("function")
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise _missing(f"{where}.function.name")
            if not isinstance(function.get("arguments"), str):
                raise _invalid_type(
                    f"{where}.function.arguments", "a string", function.get("arguments")
                )


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list):
        raise (
            _invalid_type("messages", "an array", messages)
            if messages is not None
            else _missing("messages")
        )
    if not messages:
        raise BadRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _invalid_type(param, "an object", message)
        role = message.get("role")
        if role is None:
            raise _missing(f"{param}.role")
        if role not in ROLES:
            raise _invalid_value(role, f"{param}.role", ROLES)
        _check_content(message, role, param)
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise _missing(f"{param}.tool_call_id")
        if role == "assistant" and message.get("tool_calls") is not None:
            _check_tool_calls(message["tool_calls"], f"{param}.tool_calls")


def _tool_names(tools: Any) -> set[str]:
    if not isinstance(tools, list):
        raise _invalid_type("tools", "an array", tools)
    if not tools:
        raise BadRequest(
            "Invalid 'tools': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="tools",
            code="empty_array",
        )
    names: set[str] = set()
    for i, tool in enumerate(tools):
        param = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _invalid_type(param, "an object", tool)
        kind = tool.get("type")
        if kind is None:
            raise _missing(f"{param}.type")
        if kind not in TOOL_TYPES:
            raise _invalid_value(kind, f"{param}.type", TOOL_TYPES)
        spec = tool.get(kind)
        if not isinstance(spec, dict):
            raise (
                _missing(f"{param}.{kind}")
                if spec is None
                else _invalid_type(f"{param}.{kind}", "an object", spec)
            )
        name = spec.get("name")
        if not isinstance(name, str):
            raise _missing(f"{param}.{kind}.name")
        if not NAME.match(name):
            raise BadRequest(
                f"Invalid '{param}.{kind}.name': string does not match pattern. Expected a "
                "string that matches the pattern '^[a-zA-Z0-9_-]+$' (at most 64 characters).",
                param=f"{param}.{kind}.name",
                code="invalid_value",
            )
        parameters = spec.get("parameters")
        if kind == "function" and parameters is not None and not isinstance(parameters, dict):
            raise _invalid_type(f"{param}.function.parameters", "an object", parameters)
        names.add(name)
    return names


def _check_tool_choice(choice: Any, names: set[str] | None) -> None:
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise _invalid_value(choice, "tool_choice", TOOL_CHOICES)
        named = None
    elif isinstance(choice, dict):
        kind = choice.get("type")
        if kind not in ("function", "custom", "allowed_tools"):
            raise _invalid_value(kind, "tool_choice.type", ("function", "custom", "allowed_tools"))
        named = (choice.get(kind) or {}).get("name") if kind != "allowed_tools" else None
        if kind != "allowed_tools" and not isinstance(named, str):
            raise _missing(f"tool_choice.{kind}.name")
    else:
        raise _invalid_type("tool_choice", "a string or an object", choice)
    if names is None and choice not in ("none", "auto"):
        raise BadRequest(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            param="tool_choice",
            code="invalid_value",
        )
    if names is not None and named is not None and named not in names:
        raise BadRequest(
            f"Invalid value for 'tool_choice': no tool named '{named}' is in 'tools'.",
            param="tool_choice",
            code="invalid_value",
        )


def check_chat_request(body: dict[str, Any]) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _missing("model") if model is None else _invalid_type("model", "a string", model)
    _check_messages(body.get("messages"))
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _invalid_type("stream", "a boolean", stream)
    n = body.get("n")
    if n is not None and n != 1:
        raise BadRequest("Invalid 'n': sovereign's backends generate one choice", param="n")
    names = _tool_names(body["tools"]) if body.get("tools") is not None else None
    if body.get("tool_choice") is not None:
        _check_tool_choice(body["tool_choice"], names)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _invalid_type("stream_options", "an object", options)


def check_embedding_request(body: dict[str, Any]) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _missing("model") if model is None else _invalid_type("model", "a string", model)
    if "input" not in body:
        raise _missing("input")
    texts = body["input"]
    if isinstance(texts, str) or (isinstance(texts, list) and texts and isinstance(texts[0], int)):
        texts = [texts]
    if not isinstance(texts, list) or not texts:
        raise BadRequest(
            "Invalid 'input': expected a non-empty string or array of strings.",
            param="input",
            code="invalid_value",
        )
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise BadRequest(
            f"Invalid 'input': at most {MAX_EMBEDDING_INPUTS} inputs per request.",
            param="input",
            code="invalid_value",
        )
    for i, text in enumerate(texts):
        tokens = isinstance(text, list) and all(
            isinstance(t, int) and not isinstance(t, bool) for t in text
        )
        if not (isinstance(text, str) or tokens) or not text:
            raise BadRequest(
                f"Invalid 'input[{i}]': expected a non-empty string (or array of token ids).",
                param=f"input[{i}]",
                code="invalid_value",
            )
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        raise _invalid_value(encoding, "encoding_format", ("float", "base64"))
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1
    ):
        raise BadRequest(
            "Invalid 'dimensions': expected a positive integer.",
            param="dimensions",
            code="invalid_value",
        )
