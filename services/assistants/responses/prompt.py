"""The chat completions request a response sends: instructions, history, input, options.

Token counts are the runs' estimate (about four characters a token); they only decide
truncation, the upstream's usage is what responses report.
"""

from __future__ import annotations

from typing import Any

from ..builtin import file_search
from ..errors import InvalidRequest
from ..runs import code_interpreter
from ..runs.prompt import estimate_tokens
from .items import chat_messages
from .tables import ResponseRow

__all__ = ["build_body", "fit_history", "input_token_count"]


def _system(instructions: str | None) -> list[dict[str, Any]]:
    return [{"role": "system", "content": instructions}] if instructions else []


def fit_history(
    instructions: str | None,
    history: list[dict[str, Any]],
    inputs: list[dict[str, Any]],
    truncation: str,
    context_tokens: int,
) -> list[dict[str, Any]]:
    """The chat messages, the oldest history dropped to fit when truncation is ``auto``."""
    system = _system(instructions)
    messages = system + chat_messages(history + inputs)
    tokens = estimate_tokens(messages)
    if tokens <= context_tokens:
        return messages
    if truncation != "auto":
        raise InvalidRequest(
            f"The input is about {tokens} tokens, over this server's context window of "
            f"{context_tokens} (RESPONSES_CONTEXT_TOKENS); set truncation to 'auto' to drop "
            "the oldest items.",
            param="input",
            code="context_length_exceeded",
        )
    kept = list(history)
    while kept and tokens > context_tokens:
        kept.pop(0)
        # A tool output whose call was dropped would be refused by the model's template.
        while kept and kept[0].get("type") == "function_call_output":
            kept.pop(0)
        messages = system + chat_messages(kept + inputs)
        tokens = estimate_tokens(messages)
    return messages


def _response_format(text: dict[str, Any]) -> dict[str, Any] | None:
    fmt = (text or {}).get("format") or {}
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {"name": fmt["name"], "schema": fmt["schema"], "strict": bool(fmt.get("strict"))}
        if fmt.get("description"):
            schema["description"] = fmt["description"]
        return {"type": "json_schema", "json_schema": schema}
    return None


def _chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The response's tools as chat functions; a built-in one as the function the model
    calls and this server answers."""
    out = []
    for t in tools:
        if t["type"] == file_search.NAME:
            out.append(file_search.function_tool())
        elif t["type"] == code_interpreter.NAME:
            out.append(code_interpreter.function_tool())
        else:
            function = {
                "name": t["name"],
                "description": t.get("description"),
                "parameters": t.get("parameters") or {"type": "object", "properties": {}},
                "strict": t.get("strict"),
            }
            out.append(
                {
                    "type": "function",
                    "function": {k: v for k, v in function.items() if v is not None},
                }
            )
    return out


def build_body(row: ResponseRow, messages: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": row.model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if row.temperature is not None:
        body["temperature"] = row.temperature
    if row.top_p is not None:
        body["top_p"] = row.top_p
    tools = _chat_tools(row.tools or [])
    if tools and row.tool_choice != "none":
        body["tools"] = tools
        choice = row.tool_choice
        if isinstance(choice, dict):
            # A built-in tool is chosen as the function that stands for it.
            name = choice.get("name") or choice["type"]
            choice = {"type": "function", "function": {"name": name}}
        body["tool_choice"] = choice or "auto"
        body["parallel_tool_calls"] = bool(row.parallel_tool_calls)
    fmt = _response_format(row.text)
    if fmt is not None:
        body["response_format"] = fmt
    if row.max_output_tokens is not None:
        body["max_tokens"] = row.max_output_tokens
    return body


def input_token_count(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
    chat_tools = _chat_tools(tools)
    return estimate_tokens(messages) + (estimate_tokens(chat_tools) if chat_tools else 0)
