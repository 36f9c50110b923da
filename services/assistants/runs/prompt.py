"""The chat completions request a run sends: instructions, the thread, this run's tool calls.

Token counts here are estimates (about four characters a token); they only drive
truncation and the max_prompt_tokens check, the upstream's usage is what runs report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..tables import Message, Run, RunStep
from . import code_interpreter, file_search

__all__ = ["PromptTooLong", "build_request", "estimate_tokens", "run_history"]


class PromptTooLong(Exception):
    """Even the most truncated prompt is over the run's max_prompt_tokens."""


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    return len(json.dumps(messages, ensure_ascii=False)) // 4 + 1


def chat_content(content: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Stored message parts as chat content: a plain string unless images are present."""
    texts = [p["text"]["value"] for p in content if p.get("type") == "text"]
    images = [p for p in content if p.get("type") == "image_url"]
    if not images:
        return "\n".join(texts)
    parts: list[dict[str, Any]] = [{"type": "text", "text": t} for t in texts]
    parts += [{"type": "image_url", "image_url": p["image_url"]} for p in images]
    return parts


def thread_history(messages: list[Message]) -> list[dict[str, Any]]:
    return [{"role": m.role, "content": chat_content(m.content or [])} for m in messages]


def run_history(
    steps: list[RunStep], messages: dict[str, Message], output_chars: int = 20_000
) -> list[dict[str, Any]]:
    """What this run already produced, in order: its answered tool calls and messages."""
    out: list[dict[str, Any]] = []
    for step in steps:
        details = step.step_details or {}
        if step.type == "message_creation" and step.status == "completed":
            message = messages.get(details.get("message_creation", {}).get("message_id", ""))
            if message is not None:
                out.append({"role": "assistant", "content": chat_content(message.content or [])})
        elif step.type == "tool_calls" and step.status == "completed":
            chat_calls, results = [], []
            for c in details.get("tool_calls", []):
                if c.get("type") == code_interpreter.NAME:
                    chat_call, output = code_interpreter.history_call(c, output_chars)
                elif c.get("type") == file_search.NAME:
                    chat_call, output = file_search.history_call(c)
                elif c.get("type") == "function":
                    function = c["function"]
                    chat_call = {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": function["name"], "arguments": function["arguments"]},
                    }
                    output = function.get("output") or ""
                else:
                    continue
                chat_calls.append(chat_call)
                results.append({"role": "tool", "tool_call_id": c["id"], "content": output})
            if chat_calls:
                out.append({"role": "assistant", "content": None, "tool_calls": chat_calls})
                out += results
    return out


@dataclass(frozen=True)
class Prompt:
    body: dict[str, Any]
    estimated_tokens: int


def build_request(
    run: Run,
    thread: list[dict[str, Any]],
    own: list[dict[str, Any]],
    completion_budget: int | None,
) -> Prompt:
    """The upstream request body, truncated as the run's truncation_strategy says."""
    system = [{"role": "system", "content": run.instructions}] if run.instructions else []
    strategy = run.truncation_strategy or {"type": "auto"}
    if strategy.get("type") == "last_messages" and strategy.get("last_messages"):
        thread = thread[-int(strategy["last_messages"]) :]
    messages = system + thread + own
    tokens = estimate_tokens(messages)
    if run.max_prompt_tokens is not None:
        # Drop the oldest thread messages first, keeping at least the newest one.
        while tokens > run.max_prompt_tokens and len(thread) > 1:
            thread = thread[1:]
            messages = system + thread + own
            tokens = estimate_tokens(messages)
        if tokens > run.max_prompt_tokens:
            raise PromptTooLong(f"about {tokens} prompt tokens > {run.max_prompt_tokens}")
    body: dict[str, Any] = {
        "model": run.model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if run.temperature is not None:
        body["temperature"] = run.temperature
    if run.top_p is not None:
        body["top_p"] = run.top_p
    functions = [t for t in run.tools or [] if t.get("type") == "function"]
    tools = [{"type": "function", "function": t["function"]} for t in functions]
    if code_interpreter.enabled(run.tools):
        tools.append(code_interpreter.function_tool())
    if tools:
        body["tools"] = tools
        body["tool_choice"] = _tool_choice(run.tool_choice)
        body["parallel_tool_calls"] = bool(run.parallel_tool_calls)
    fmt = run.response_format
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        body["response_format"] = fmt
    if completion_budget is not None:
        body["max_tokens"] = completion_budget
    return Prompt(body=body, estimated_tokens=tokens)


def _tool_choice(choice: Any) -> Any:
    if choice in ("none", "auto", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("function"):
        return {"type": "function", "function": {"name": choice["function"]["name"]}}
    if isinstance(choice, dict) and choice.get("type") == code_interpreter.NAME:
        return {"type": "function", "function": {"name": code_interpreter.NAME}}
    # file_search is chosen by the search made before the model answers: the model then
    # decides whether it searches again.
    return "auto"
