"""Streaming chat completions from the upstream, as parsed chunks, with failures as one type.

UpstreamFailure carries the run's ``last_error`` code: ``rate_limit_exceeded`` for HTTP 429,
``invalid_prompt`` for a 4xx the prompt caused, ``server_error`` for everything else
(unreachable, 5xx, timeouts, malformed or truncated streams, errors sent mid-stream).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["Timeouts", "UpstreamFailure", "stream_chat"]


class UpstreamFailure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    connect: float
    first_token: float
    idle: float


def _error_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error or data)[:200]


def _status_failure(status: int, body: bytes) -> UpstreamFailure:
    detail = _error_message(body)
    if status == 429:
        return UpstreamFailure("rate_limit_exceeded", f"The upstream is rate limited: {detail}")
    if status in (400, 413, 422):
        return UpstreamFailure("invalid_prompt", f"The upstream rejected the prompt: {detail}")
    return UpstreamFailure("server_error", f"The upstream answered HTTP {status}: {detail}")


async def stream_chat(
    client: httpx.AsyncClient, body: dict[str, Any], timeouts: Timeouts
) -> AsyncIterator[dict[str, Any]]:
    """POST /chat/completions with stream=true and yield every chunk object until it ends.

    A stream must end with a finish_reason; a missing ``[DONE]`` after it is tolerated
    because several servers omit it.
    """
    loop = asyncio.get_running_loop()
    timeout = httpx.Timeout(
        connect=timeouts.connect,
        read=max(timeouts.first_token, timeouts.idle),
        write=timeouts.connect,
        pool=timeouts.connect,
    )
    finished = False
    try:
        # The deadline covers the wait for the first chunk, then moves with every chunk by
        # the idle timeout; httpx's own read timeout is only the outer bound.
        async with asyncio.timeout(timeouts.first_token) as deadline:
            async with client.stream(
                "POST", "/chat/completions", json=body, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    raise _status_failure(response.status_code, await response.aread())
                first = True
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        # Read on to the end of the body, so the connection can be reused.
                        finished = True
                        continue
                    try:
                        chunk = json.loads(data)
                    except ValueError:
                        raise UpstreamFailure(
                            "server_error", "The upstream sent a malformed stream chunk."
                        ) from None
                    if not isinstance(chunk, dict):
                        raise UpstreamFailure(
                            "server_error", "The upstream sent a malformed stream chunk."
                        )
                    if "error" in chunk and not chunk.get("choices"):
                        raise UpstreamFailure(
                            "server_error",
                            f"The upstream failed mid-stream: {_error_message(data.encode())}",
                        )
                    if any(c.get("finish_reason") for c in chunk.get("choices") or ()):
                        finished = True
                    first = False
                    # No deadline while the consumer holds the chunk: its time is not the
                    # upstream's silence, and a timer firing then would cancel the consumer.
                    deadline.reschedule(None)
                    yield chunk
                    deadline.reschedule(loop.time() + timeouts.idle)
                if first and not finished:
                    raise UpstreamFailure("server_error", "The upstream sent an empty stream.")
    except TimeoutError:
        if finished:
            return  # the answer was whole; only the end of the body was slow
        raise UpstreamFailure(
            "server_error", "The upstream stopped sending tokens (timed out)."
        ) from None
    except httpx.TimeoutException as exc:
        raise UpstreamFailure(
            "server_error", f"The upstream timed out ({type(exc).__name__})."
        ) from None
    except httpx.HTTPError as exc:
        raise UpstreamFailure(
            "server_error", f"The upstream is unreachable or broke the connection: {exc!r}"
        ) from None
    if not finished:
        raise UpstreamFailure(
            "server_error", "The upstream stream ended before the answer was complete."
        )
