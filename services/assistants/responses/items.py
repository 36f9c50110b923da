"""Input items as the API stores and shows them, and items as chat completion messages.

A request's ``input`` (a string, or a list of messages, function calls and their outputs)
becomes item objects with ids and ``status``; any list of items becomes the messages of a
chat completions request.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidRequest
from ..ids import new_id

__all__ = ["ITEM_PREFIXES", "chat_messages", "input_items", "item_text", "output_text_part"]

ITEM_PREFIXES = {
    "message": "msg_",
    "function_call": "fc_",
    "function_call_output": "fco_",
    "file_search_call": "fs_",
    "code_interpreter_call": "ci_",
}
# Output items of built-in tools a caller may pass back as input, kept as they were.
TOOL_ITEMS = {
    "file_search_call": ("queries",),
    "code_interpreter_call": ("container_id", "code"),
}
INPUT_ROLES = ("user", "system", "developer", "assistant")
TEXT_PARTS = ("input_text", "output_text", "text")


def output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _part(part: Any, role: str, where: str) -> dict[str, Any]:
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise InvalidRequest(f"Invalid '{where}': expected a content part object.", param=where)
    kind = part["type"]
    if kind in TEXT_PARTS or kind == "refusal":
        field = "refusal" if kind == "refusal" else "text"
        text = part.get(field)
        if not isinstance(text, str):
            raise InvalidRequest(f"Missing required parameter: '{where}.{field}'.", param=where)
        if kind == "refusal":
            return {"type": "refusal", "refusal": text}
        if role == "assistant":
            return {**output_text_part(text), "annotations": part.get("annotations") or []}
        return {"type": "input_text", "text": text}
    if kind == "input_image":
        if not part.get("image_url") and not part.get("file_id"):
            raise InvalidRequest(
                f"Invalid '{where}': an input_image needs an image_url or a file_id.", param=where
            )
        image = {"type": "input_image", "detail": part.get("detail") or "auto"}
        for key in ("image_url", "file_id"):
            if part.get(key):
                image[key] = part[key]
        return image
    raise InvalidRequest(
        f"Invalid '{where}.type': content parts of type '{kind}' are not supported.",
        param=f"{where}.type",
    )


def _message(raw: dict[str, Any], where: str) -> dict[str, Any]:
    role = raw.get("role")
    if role not in INPUT_ROLES:
        raise InvalidRequest(
            f"Invalid '{where}.role': expected one of {', '.join(INPUT_ROLES)}.",
            param=f"{where}.role",
        )
    content = raw.get("content")
    if isinstance(content, str):
        parts = [_part({"type": "input_text", "text": content}, role, where)]
    elif isinstance(content, list):
        parts = [_part(p, role, f"{where}.content[{i}]") for i, p in enumerate(content)]
    else:
        raise InvalidRequest(
            f"Invalid '{where}.content': expected a string or a list of content parts.",
            param=f"{where}.content",
        )
    return {"type": "message", "role": role, "content": parts, "status": "completed"}


def _string(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or (not value and key != "arguments"):
        param = f"{where}.{key}"
        raise InvalidRequest(f"Missing required parameter: '{param}'.", param=param)
    return value


def _item(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidRequest(f"Invalid '{where}': expected an object.", param=where)
    kind = raw.get("type", "message")
    if kind == "message":
        item = _message(raw, where)
    elif kind == "function_call":
        item = {
            "type": "function_call",
            "call_id": _string(raw, "call_id", where),
            "name": _string(raw, "name", where),
            "arguments": _string(raw, "arguments", where),
            "status": "completed",
        }
    elif kind == "function_call_output":
        output = raw.get("output")
        if not isinstance(output, str | list):
            raise InvalidRequest(
                f"Missing required parameter: '{where}.output'.", param=f"{where}.output"
            )
        item = {
            "type": "function_call_output",
            "call_id": _string(raw, "call_id", where),
            "output": output,
            "status": "completed",
        }
    elif kind in TOOL_ITEMS:
        for key in TOOL_ITEMS[kind]:
            if key not in raw:
                param = f"{where}.{key}"
                raise InvalidRequest(f"Missing required parameter: '{param}'.", param=param)
        item = {k: v for k, v in raw.items() if k != "id"}
        item["status"] = raw.get("status") or "completed"
    else:
        raise InvalidRequest(
            f"Invalid '{where}.type': input items of type '{kind}' are not supported.",
            param=f"{where}.type",
        )
    return {"id": new_id(ITEM_PREFIXES[kind]), **item}


def input_items(value: str | list[Any] | None, param: str = "input") -> list[dict[str, Any]]:
    """A request's input as stored items, in order, each with a fresh id."""
    if value is None:
        return []
    if isinstance(value, str):
        return [_item({"role": "user", "content": value}, param)]
    return [_item(raw, f"{param}[{i}]") for i, raw in enumerate(value)]


def item_text(content: Any) -> str:
    """The text of a message's content parts (or of a function output's)."""
    if isinstance(content, str):
        return content
    texts = []
    for part in content or ():
        if isinstance(part, dict):
            texts.append(part.get("text") or part.get("refusal") or "")
    return "".join(texts)


def _chat_content(item: dict[str, Any]) -> str | list[dict[str, Any]]:
    parts = item.get("content") or []
    images = [p for p in parts if p.get("type") == "input_image" and p.get("image_url")]
    if not images:
        return "\n".join(
            p.get("text") or p.get("refusal") or "" for p in parts if p.get("type") != "input_image"
        )
    out: list[dict[str, Any]] = []
    for p in parts:
        if p.get("type") == "input_image":
            if p.get("image_url"):
                out.append({"type": "image_url", "image_url": {"url": p["image_url"]}})
        else:
            out.append({"type": "text", "text": p.get("text") or p.get("refusal") or ""})
    return out


def chat_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items as chat messages: consecutive function calls become one assistant message."""
    out: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            role = "system" if item["role"] == "developer" else item["role"]
            out.append({"role": role, "content": _chat_content(item)})
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item["output"]
            text = output if isinstance(output, str) else item_text(output)
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
        elif kind == "code_interpreter_call":
            out += _code_call(item)
        # A file_search_call is left out: each response searches again for its own turn.
    return out


def _code_call(item: dict[str, Any]) -> list[dict[str, Any]]:
    """A code_interpreter_call as the model's call of its function and what it read back."""
    arguments = json.dumps({"code": item.get("code") or ""})
    call = {
        "id": item["id"],
        "type": "function",
        "function": {"name": "code_interpreter", "arguments": arguments},
    }
    logs = "".join(o.get("logs", "") for o in item.get("outputs") or () if o.get("type") == "logs")
    return [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": item["id"], "content": logs.strip() or "(no output)"},
    ]


def dumps_arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
