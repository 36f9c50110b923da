"""Turn backend events into one clean OpenAI chat-completion stream (or one JSON body).

Whatever the upstream sent, the client sees: one id on every chunk, a role on the first,
tool-call deltas with index / id / type / function.name on a call's first fragment and
argument fragments after, one final chunk whose finish_reason is `tool_calls` when tools
were called, a usage chunk when asked for, then `data: [DONE]`.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from services.sovereign.errors import SovereignError
from services.sovereign.events import ContentDelta, Event, Finish, ToolCallDelta, Usage

__all__ = ["DONE", "StreamNormaliser", "error_frame", "new_call_id", "normalise_completion"]

DONE = b"data: [DONE]\n\n"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def _data_frame(obj: Any) -> bytes:
    return b"data: " + _dumps(obj).encode() + b"\n\n"


def error_frame(error: SovereignError) -> bytes:
    return _data_frame(error.body())


def fix_finish_reason(reason: str | None, called_tools: bool) -> str:
    # Ollama (and some OpenAI-compatible servers) report "stop" after emitting tool calls.
    if called_tools and reason in (None, "stop"):
        return "tool_calls"
    return reason or "stop"


class StreamNormaliser:
    """Renders events as SSE frames; keeps finish and usage back until the stream ends."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = "chatcmpl-" + secrets.token_hex(12)
        self.include_usage = include_usage
        head = {"id": self.id, "object": "chat.completion.chunk", "created": int(time.time())}
        head["model"] = model
        # Chunks differ only in their delta, so the JSON around it is rendered once.
        prefix = _dumps(head)[:-1] + ',"choices":[{"index":0,"delta":'
        self._prefix = b"data: " + prefix.encode()
        tail = ',"logprobs":null,"finish_reason":null}]'
        tail += ',"usage":null}' if include_usage else "}"
        self._suffix = tail.encode() + b"\n\n"
        self._head = head
        self._role_sent = False
        self._calls: dict[int, int] = {}  # upstream index -> our index
        self._ids: dict[str, int] = {}  # upstream call id -> upstream index
        self._current_call: int | None = None
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._deltas = 0

    def _frame(self, delta: dict[str, Any]) -> bytes:
        if not self._role_sent:
            self._role_sent = True
            delta = {"role": "assistant", **delta}
        self._deltas += 1
        return self._prefix + _dumps(delta).encode() + self._suffix

    def feed(self, event: Event) -> bytes | None:
        """The frame for one event, or None when the event is held back or empty."""
        if type(event) is ContentDelta:
            if not event.text:
                return None
            return self._frame({"content": event.text})
        if type(event) is ToolCallDelta:
            return self._tool_call(event)
        if type(event) is Finish:
            self._finish = event.reason or self._finish
            return None
        if type(event) is Usage:
            self._usage = event
            return None
        raise TypeError(f"unknown event {event!r}")

    def _tool_call(self, event: ToolCallDelta) -> bytes | None:
        # A fragment without an index continues the current call unless it names a new one.
        if event.index is not None:
            upstream = event.index
        elif event.id and event.id in self._ids:
            upstream = self._ids[event.id]
        elif self._current_call is None or event.id or event.name:
            upstream = -1 - len(self._calls)
        else:
            upstream = self._current_call
        if event.id:
            self._ids.setdefault(event.id, upstream)
        fragment: dict[str, Any]
        if upstream not in self._calls:
            self._calls[upstream] = len(self._calls)
            function = {"name": event.name or "", "arguments": event.arguments}
            fragment = {
                "index": self._calls[upstream],
                "id": event.id or new_call_id(),
                "type": "function",
                "function": function,
            }
        elif not event.arguments:
            self._current_call = upstream
            return None
        else:
            fragment = {"index": self._calls[upstream], "function": {"arguments": event.arguments}}
        self._current_call = upstream
        return self._frame({"content": None, "tool_calls": [fragment]})

    def end(self) -> bytes:
        """The final chunk, the usage chunk if asked for, and [DONE]."""
        out = b""
        if not self._role_sent:
            out += self._frame({"content": ""})
        reason = fix_finish_reason(self._finish, bool(self._calls))
        final = {
            **self._head,
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason}],
        }
        if self.include_usage:
            final["usage"] = None
        out += _data_frame(final)
        if self.include_usage:
            usage = self._usage
            # An upstream that reports no usage still gets a usage chunk; each streamed
            # delta is close to one token, which is the best estimate left.
            prompt = usage.prompt_tokens if usage else 0
            completion = usage.completion_tokens if usage else self._deltas
            body = {
                **self._head,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
            out += _data_frame(body)
        return out + DONE


def normalise_completion(body: dict[str, Any], model: str) -> dict[str, Any]:
    """Fix up a non-streamed chat.completion body in place: id, object, call ids, finish."""
    body.setdefault("id", "chatcmpl-" + secrets.token_hex(12))
    body["object"] = "chat.completion"
    body.setdefault("created", int(time.time()))
    body.setdefault("model", model)
    for choice in body.get("choices") or []:
        message = choice.setdefault("message", {"role": "assistant", "content": None})
        message.setdefault("role", "assistant")
        calls = message.get("tool_calls") or []
        for call in calls:
            call["id"] = call.get("id") or new_call_id()
            call.setdefault("type", "function")
            function = call.setdefault("function", {})
            arguments = function.get("arguments")
            if not isinstance(arguments, str):
                function["arguments"] = json.dumps(arguments or {})
        if not calls and "tool_calls" in message:
            del message["tool_calls"]
        choice["finish_reason"] = fix_finish_reason(choice.get("finish_reason"), bool(calls))
        choice.setdefault("logprobs", None)
    return body
