"""The scripted-response model shared by the fake upstreams: parsing, matching and pacing.

The JSON script format is documented in `tests.fakes.openai_upstream`.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DroppedConnection",
    "RequestLog",
    "ScriptedResponse",
    "ScriptedToolCall",
    "Scripts",
    "crash_now",
    "embedding_fault",
    "paced_stream",
    "split_text",
]


def split_text(text: str, parts: int) -> list[str]:
    """Split text into `parts` contiguous non-empty pieces (fewer if the text is shorter)."""
    if not text:
        return []
    parts = max(1, min(parts, len(text)))
    size, extra = divmod(len(text), parts)
    out: list[str] = []
    start = 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return out


@dataclass(frozen=True)
class ScriptedToolCall:
    name: str
    arguments: str
    id: str | None
    chunks: int

    @classmethod
    def parse(cls, raw: dict[str, Any], position: int) -> ScriptedToolCall:
        args = raw.get("arguments", {})
        arguments = args if isinstance(args, str) else json.dumps(args)
        # An explicit null id scripts a server that omits tool-call ids.
        call_id = raw.get("id", f"call_fake_{position}")
        return cls(
            name=raw["name"], arguments=arguments, id=call_id, chunks=int(raw.get("chunks", 3))
        )


@dataclass(frozen=True)
class ScriptedResponse:
    """One scripted answer; see the module docstring of openai_upstream for every field."""

    match: str | None = None
    repeat: bool = False
    status: int = 200
    error: dict[str, Any] | None = None
    text: str = ""
    pieces: tuple[str, ...] = ()
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    delay: float = 0.0
    first_token_delay: float = 0.0
    tokens_per_s: float | None = None
    stall_after: int | None = None
    stall_seconds: float = 0.0
    malformed_after: int | None = None
    truncate_after: int | None = None
    drop_after: int | None = None
    crash_after: int | None = None
    crash: bool = False
    error_after: int | None = None
    omit_done: bool = False
    omit_index: bool = False
    vary_ids: bool = False
    usage_in_final_chunk: bool = False
    no_usage: bool = False

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ScriptedResponse:
        text = raw.get("text", "")
        if "tokens" in raw:
            pieces = tuple(raw["tokens"])
            text = "".join(pieces)
        else:
            pieces = tuple(split_text(text, int(raw.get("chunks", 1))))
        stall = raw.get("stall") or {}
        status = int(raw.get("status", 200))
        error = raw.get("error")
        if status >= 400 and error is None:
            error = {"message": f"scripted error {status}", "type": "server_error"}
        return cls(
            match=raw.get("match"),
            repeat=bool(raw.get("repeat", False)),
            status=status,
            error=error,
            text=text,
            pieces=pieces,
            tool_calls=tuple(
                ScriptedToolCall.parse(tc, i) for i, tc in enumerate(raw.get("tool_calls", []))
            ),
            finish_reason=raw.get("finish_reason"),
            usage=raw.get("usage"),
            delay=float(raw.get("delay", 0.0)),
            first_token_delay=float(raw.get("first_token_delay", 0.0)),
            tokens_per_s=raw.get("tokens_per_s"),
            stall_after=stall.get("after_chunks"),
            stall_seconds=float(stall.get("seconds", 0.0)),
            malformed_after=raw.get("malformed_after"),
            truncate_after=raw.get("truncate_after"),
            drop_after=raw.get("drop_after"),
            crash_after=raw.get("crash_after"),
            crash=bool(raw.get("crash", False)),
            error_after=raw.get("error_after"),
            omit_done=bool(raw.get("omit_done", False)),
            omit_index=bool(raw.get("omit_index", False)),
            vary_ids=bool(raw.get("vary_ids", False)),
            usage_in_final_chunk=bool(raw.get("usage_in_final_chunk", False)),
            no_usage=bool(raw.get("no_usage", False)),
        )

    def final_finish_reason(self) -> str:
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"

    def usage_for(self, prompt_chars: int) -> dict[str, int]:
        if self.usage is not None:
            usage = dict(self.usage)
        else:
            completion = len(self.pieces) + sum(tc.chunks for tc in self.tool_calls)
            usage = {"prompt_tokens": max(1, prompt_chars // 4), "completion_tokens": completion}
        usage.setdefault("total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])
        return usage


class Pacer:
    """Emits chunk i no earlier than start + first_token_delay + i / rate.

    Scheduling against absolute deadlines (rather than sleeping 1/rate per chunk) keeps the
    scripted token rate accurate even when each chunk costs some time to send.
    """

    def __init__(self, response: ScriptedResponse) -> None:
        self._start = time.perf_counter()
        self._first = response.first_token_delay
        self._rate = response.tokens_per_s
        self._sent = 0

    async def next(self) -> None:
        due = self._start + self._first
        if self._rate and self._sent:
            due += self._sent / float(self._rate)
        self._sent += 1
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)


@dataclass
class Scripts:
    """The queue of scripted responses, consumed in order, optionally matched by substring."""

    responses: list[ScriptedResponse]
    models: list[str] = field(default_factory=lambda: ["fake-model"])
    # When set, /v1/embeddings answers hashed bag-of-words vectors of this many dimensions,
    # which carry meaning (texts sharing words are near), instead of 8 opaque numbers.
    embedding_dims: int | None = None
    # Seconds each /v1/embeddings request takes (to catch a service mid-ingestion).
    embedding_delay: float = 0.0
    embedding_faults: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def parse(cls, raw: Any) -> Scripts:
        if isinstance(raw, list):
            raw = {"responses": raw}
        return cls(
            responses=[ScriptedResponse.parse(r) for r in raw.get("responses", [])],
            models=list(raw.get("models", ["fake-model"])),
            embedding_dims=raw.get("embedding_dims"),
            embedding_delay=float(raw.get("embedding_delay", 0.0)),
            embedding_faults=dict(raw.get("embedding_faults", {})),
        )

    def take(self, last_user_message: str) -> ScriptedResponse | None:
        with self._lock:
            for i, response in enumerate(self.responses):
                if response.match is None or response.match in last_user_message:
                    if not response.repeat:
                        del self.responses[i]
                    return response
        return None


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class RequestLog:
    """What the fake received, served back at GET /_requests for assertions."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def add(self, method: str, path: str, headers: dict[str, str], body: Any) -> dict[str, Any]:
        entry = {
            "method": method,
            "path": path,
            "authorization": headers.get("authorization"),
            "body": body,
            "completed": None,
        }
        self.entries.append(entry)
        return entry


def crash_now() -> None:
    """The whole fake process dies at once, as a model runtime that segfaults would."""
    os._exit(70)


def embedding_fault(scripts: Scripts, inputs: list[Any]) -> str | None:
    """The scripted fault of the first input that holds one of the script's fault markers."""
    for text in inputs:
        for marker, fault in scripts.embedding_faults.items():
            if marker in str(text):
                return fault
    return None


class DroppedConnection(Exception):
    """Raised inside a response body to make the server abort the connection mid-stream."""


async def paced_stream(
    response: ScriptedResponse,
    frames: list[bytes],
    *,
    error_frame: bytes,
    malformed_frame: bytes,
    done_frame: bytes | None,
    entry: dict[str, Any],
) -> Any:
    """Yield frames at the scripted pace, injecting the scripted faults at chunk index K."""
    pacer = Pacer(response)
    entry["completed"] = False
    try:
        for k, frame in enumerate(frames):
            if response.stall_after == k:
                await asyncio.sleep(response.stall_seconds)
            if response.truncate_after == k:
                return
            if response.drop_after == k:
                raise DroppedConnection("scripted connection drop")
            if response.crash_after == k:
                crash_now()
            if response.error_after == k:
                yield error_frame
                return
            await pacer.next()
            if response.malformed_after == k:
                yield malformed_frame
            yield frame
        if done_frame is not None and not response.omit_done:
            yield done_frame
        entry["completed"] = True
    except asyncio.CancelledError:
        entry["cancelled"] = True
        raise
    except GeneratorExit:
        entry["cancelled"] = True
        raise


async def wait_unless_disconnected(request: Any, seconds: float) -> bool:
    """Sleep, but notice a client that hangs up meanwhile (False), as a slow model would."""
    deadline = time.perf_counter() + seconds
    while (left := deadline - time.perf_counter()) > 0:
        await asyncio.sleep(min(left, 0.02))
        if await request.is_disconnected():
            return False
    return True
