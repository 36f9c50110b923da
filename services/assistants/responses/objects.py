"""OpenAI shapes of responses and conversations, and the request options they echo."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ..errors import InvalidRequest
from . import code_interpreter, file_search
from .tables import Conversation, ResponseRow

__all__ = [
    "INCLUDABLE",
    "conversation_object",
    "normalise_text",
    "normalise_tool_choice",
    "normalise_tools",
    "response_object",
    "response_usage",
    "shown_item",
]

INCLUDABLE = frozenset(
    {
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "message.input_image.image_url",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
    }
)
# Tools this server runs itself, and how each checks and shows its definition.
BUILT_IN = {
    file_search.NAME: file_search.normalise_tool,
    code_interpreter.NAME: code_interpreter.normalise_tool,
}
TOOL_CHOICE_OPTIONS = ("none", "auto", "required")
# What an output item keeps to itself unless the request includes it.
INCLUDED_ONLY = {
    "file_search_call": ("results", "file_search_call.results"),
    "code_interpreter_call": ("outputs", "code_interpreter_call.outputs"),
}


def shown_item(item: dict[str, Any], include: Collection[str]) -> dict[str, Any]:
    """An output item as the API shows it: search results and code outputs only when
    ``include`` asks for them (the stored item keeps them, for the turns that follow)."""
    hidden = INCLUDED_ONLY.get(item.get("type", ""))
    if hidden is None or hidden[1] in include or item.get(hidden[0]) is None:
        return item
    return {**item, hidden[0]: None}


def response_usage(chat: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chat completions usage as Responses usage."""
    if not chat:
        return None
    prompt = int(chat.get("prompt_tokens") or 0)
    completion = int(chat.get("completion_tokens") or 0)
    cached = int((chat.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": int(chat.get("total_tokens") or prompt + completion),
    }


def normalise_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Function tools as stored and shown; any tool this server cannot run is a 400."""
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, tool in enumerate(tools or []):
        kind = tool.get("type")
        where = f"tools[{i}]"
        if kind == "function":
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequest(
                    f"Missing required parameter: '{where}.name'.", param=f"{where}.name"
                )
            if name in names:
                raise InvalidRequest(
                    f"Invalid '{where}.name': duplicate function name '{name}'.",
                    param=f"{where}.name",
                )
            names.add(name)
            parameters = tool.get("parameters")
            if parameters is not None and not isinstance(parameters, dict):
                raise InvalidRequest(
                    f"Invalid '{where}.parameters': expected a JSON schema object.",
                    param=f"{where}.parameters",
                )
            strict = tool.get("strict")
            out.append(
                {
                    "type": "function",
                    "name": name,
                    "description": tool.get("description"),
                    "parameters": parameters,
                    "strict": True if strict is None else bool(strict),
                }
            )
        elif kind in BUILT_IN:
            if any(t["type"] == kind for t in out):
                raise InvalidRequest(
                    f"Invalid '{where}': only one '{kind}' tool is allowed.", param=where
                )
            out.append(BUILT_IN[kind](tool, where))
        else:
            raise InvalidRequest(
                f"The tool type '{kind}' is not supported by this server: it runs function "
                "tools (the caller executes them), file_search and code_interpreter.",
                param=f"{where}.type",
                code="unsupported_tool",
            )
    for kind in names & {t["type"] for t in out}:
        raise InvalidRequest(
            f"Invalid 'tools': a function cannot be named '{kind}' beside the '{kind}' tool.",
            param="tools",
        )
    return out


def normalise_tool_choice(choice: Any, tools: list[dict[str, Any]]) -> Any:
    if choice is None:
        return "auto"
    if choice in TOOL_CHOICE_OPTIONS:
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if not any(t.get("name") == name for t in tools):
            raise InvalidRequest(
                f"Invalid 'tool_choice': no function named '{name}' in 'tools'.",
                param="tool_choice",
            )
        return {"type": "function", "name": name}
    if isinstance(choice, dict) and choice.get("type") in BUILT_IN:
        if not any(t["type"] == choice["type"] for t in tools):
            raise InvalidRequest(
                f"Invalid 'tool_choice': no '{choice['type']}' tool in 'tools'.",
                param="tool_choice",
            )
        return {"type": choice["type"]}
    raise InvalidRequest(
        "Invalid 'tool_choice': expected 'none', 'auto', 'required', "
        "{'type': 'function', 'name': ...}, {'type': 'file_search'} or "
        "{'type': 'code_interpreter'}.",
        param="tool_choice",
    )


def normalise_text(text: dict[str, Any] | None) -> dict[str, Any]:
    """The ``text`` option as shown on a response: a format and a verbosity."""
    text = dict(text or {})
    fmt = text.get("format") or {"type": "text"}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("text", "json_object"):
        fmt = {"type": kind}
    elif kind == "json_schema":
        if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
            raise InvalidRequest(
                "Invalid 'text.format': a json_schema format needs a 'name' and a 'schema'.",
                param="text.format",
            )
        fmt = {
            "type": "json_schema",
            "name": fmt["name"],
            "schema": fmt["schema"],
            "strict": bool(fmt.get("strict")),
            **({"description": fmt["description"]} if fmt.get("description") else {}),
        }
    else:
        raise InvalidRequest(
            "Invalid 'text.format.type': expected 'text', 'json_object' or 'json_schema'.",
            param="text.format.type",
        )
    verbosity = text.get("verbosity") or "medium"
    if verbosity not in ("low", "medium", "high"):
        raise InvalidRequest("Invalid 'text.verbosity'.", param="text.verbosity")
    return {"format": fmt, "verbosity": verbosity}


def response_object(
    row: ResponseRow, *, store: bool = True, include: list[str] | None = None
) -> dict[str, Any]:
    extra = row.extra or {}
    included = [*(row.include or []), *(include or [])]
    obj: dict[str, Any] = {
        "id": row.id,
        "object": "response",
        "created_at": row.created_at,
        "status": row.status,
        "background": bool(row.background),
        "completed_at": row.completed_at,
        "error": row.error,
        "incomplete_details": row.incomplete_details,
        "instructions": row.instructions,
        "max_output_tokens": row.max_output_tokens,
        "max_tool_calls": extra.get("max_tool_calls"),
        "model": row.model,
        "output": [shown_item(item, included) for item in row.output or []],
        "parallel_tool_calls": bool(row.parallel_tool_calls),
        "previous_response_id": row.previous_response_id,
        "reasoning": extra.get("reasoning") or {"effort": None, "summary": None},
        "service_tier": extra.get("service_tier") or "default",
        "store": store,
        "temperature": 1.0 if row.temperature is None else row.temperature,
        "text": row.text or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": row.tool_choice if row.tool_choice is not None else "auto",
        "tools": row.tools or [],
        "top_logprobs": extra.get("top_logprobs") or 0,
        "top_p": 1.0 if row.top_p is None else row.top_p,
        "truncation": row.truncation or "disabled",
        "metadata": row.metadata_ or {},
        "conversation": {"id": row.conversation_id} if row.conversation_id else None,
    }
    if row.usage is not None:  # absent, not null, until there is some
        obj["usage"] = row.usage
    for key in ("user", "safety_identifier", "prompt_cache_key"):
        if extra.get(key) is not None:
            obj[key] = extra[key]
    return obj


def conversation_object(row: Conversation) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "conversation",
        "created_at": row.created_at,
        "metadata": row.metadata_ or {},
    }
