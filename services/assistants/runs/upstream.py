"""Streaming chat completions from the upstream, as parsed chunks, with failures as one type.

UpstreamFailure carries the run's ``last_error`` code: ``rate_limit_exceeded`` for HTTP 429,
``invalid_prompt`` for a 4xx the prompt caused, ``server_error`` for everything else
(unreachable, 5xx, timeouts, malformed or truncated streams, errors sent mid-stream).

An upstream that is away (refused, gone before answering, 503, or sovereign's 502 for an
unreachable backend) is asked again, with backoff, for ``Timeouts.retry`` seconds: a stack
failing over or a model still loading delays a run instead of failing it. Nothing has been
relayed by then, so asking again repeats nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["ASKED", "Timeouts", "UpstreamFailure", "stream_chat"]

log = logging.getLogger(__name__)

# Called (in the asking task's context) once the upstream has answered the request's
# headers: work that may wait for the model, such as a write, can start then.
ASKED: ContextVar[Callable[[], None] | None] = ContextVar("upstream_asked", default=None)

# sovereign's codes for "no backend can answer now"; its other 502s are real failures.
_AWAY_CODES = frozenset({"upstream_unreachable", "upstream_disconnected"})
_FIRST_BACKOFF = 0.25
_MAX_BACKOFF = 4.0


class UpstreamFailure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Away(UpstreamFailure):
    """The upstream did not take the request at all; asking again is safe."""

    def __init__(self, message: str) -> None:
        super().__init__("server_error", message)


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    connect: float
    first_token: float
    idle: float
    retry: float = 0.0


def _error_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error or data)[:200]


def _error_code(body: bytes) -> str | None:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    return error.get("code") if isinstance(error, dict) else None


def _status_failure(status: int, body: bytes) -> UpstreamFailure:
    detail = _error_message(body)
    if status == 503 or (status == 502 and _error_code(body) in _AWAY_CODES):
        return _Away(f"The upstream answered HTTP {status}: {detail}")
    if status == 429:
        return UpstreamFailure("rate_limit_exceeded", f"The upstream is rate limited: {detail}")
    if status in (400, 413, 422):
        return UpstreamFailure("invalid_prompt", f"The upstream rejected the prompt: {detail}")
    return UpstreamFailure("server_error", f"The upstream answered HTTP {status}: {detail}")


async def stream_chat(
    client: httpx.AsyncClient, body: dict[str, Any], timeouts: Timeouts
) -> AsyncIterator[dict[str, Any]]:
    """POST /chat/completions with stream=true and yield every chunk object until it ends,
    asking again while the upstream is away, for up to ``timeouts.retry`` seconds."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeouts.retry
    backoff = _FIRST_BACKOFF
    while True:
        try:
            async with aclosing(_stream_once(client, body, timeouts)) as chunks:
                async for chunk in chunks:
                    yield chunk
            return
        except _Away as exc:
            left = give_up - loop.time()
            if left <= 0:
                raise UpstreamFailure(exc.code, exc.message) from None
            log.info("upstream away (%s); asking again in %.2f s", exc.message, backoff)
            await asyncio.sleep(min(backoff, left))
            backoff = min(backoff * 2, _MAX_BACKOFF)


async def _stream_once(
    client: httpx.AsyncClient, body: dict[str, Any], timeouts: Timeouts
) -> AsyncIterator[dict[str, Any]]:
    """POST /chat/completions with stream=true once and yield every chunk object.

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
    answered = False
    try:
        # The deadline covers the wait for the first chunk, then moves with every chunk by
        # the idle timeout; httpx's own read timeout is only the outer bound.
        async with asyncio.timeout(timeouts.first_token) as deadline:
            async with client.stream(
                "POST", "/chat/completions", json=body, timeout=timeout
            ) as response:
                answered = True
                if (asked := ASKED.get()) is not None:
                    asked()
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
    except httpx.TransportError as exc:
        message = f"The upstream is unreachable or broke the connection: {exc!r}"
        if not answered:
            raise _Away(message) from None
        raise UpstreamFailure("server_error", message) from None
    except httpx.HTTPError as exc:
        raise UpstreamFailure(
            "server_error", f"The upstream is unreachable or broke the connection: {exc!r}"
        ) from None
    if not finished:
        raise UpstreamFailure(
            "server_error", "The upstream stream ended before the answer was complete."
        )
