"""Chat completions through a backend: the streamed and the non-streamed path.

A stream's first event is awaited (briefly) before the response starts, so an upstream
that fails before answering gets a real HTTP status; after that, failures become an
OpenAI-shaped error event in the stream, never a silent end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio

from services.sovereign.backends import Backend
from services.sovereign.errors import SovereignError, UpstreamError, UpstreamTimeout
from services.sovereign.events import Event, Usage
from services.sovereign.normalise import StreamNormaliser, error_frame, normalise_completion
from services.sovereign.routing import Route

__all__ = ["TimedEvents", "complete_chat", "stream_chat"]

log = logging.getLogger("sovereign")

HEARTBEAT = b": waiting for the first token\n\n"  # an SSE comment: clients skip it


class TimedEvents:
    """A backend's events with the first-token limit until the first event, idle after."""

    def __init__(self, backend: Backend, events: AsyncIterator[list[Event]]) -> None:
        self.backend = backend
        self.events = events
        self.limit = backend.timeouts.first_token
        self.which = "first-token"

    async def next(self) -> list[Event] | None:
        try:
            async with asyncio.timeout(self.limit):
                batch = await anext(self.events)
        except StopAsyncIteration:
            return None
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"{self.backend.describe()} sent nothing for {self.limit:g}s ({self.which} timeout)"
            ) from exc
        if any(type(event) is not Usage for event in batch):
            self.limit = self.backend.timeouts.idle
            self.which = "idle"
        return batch

    async def aclose(self) -> None:
        # Shielded: when the client has gone, the enclosing scope is cancelled, yet the
        # upstream response must still be closed so the backend stops generating.
        with anyio.CancelScope(shield=True):
            aclose = getattr(self.events, "aclose", None)
            if aclose is not None:
                await aclose()


async def complete_chat(route: Route, body: dict[str, Any]) -> dict[str, Any]:
    result = await route.backend.complete(body, route.model)
    return normalise_completion(result, route.model)


async def stream_chat(route: Route, body: dict[str, Any]) -> AsyncGenerator[bytes, None]:
    """Start the upstream stream and return the generator of SSE frames for the client.

    The first event is awaited for up to `hold_headers` seconds before the response
    starts; a slower first token (a cold model loading) gets a started stream with
    heartbeat comments instead, so clients with read timeouts keep waiting.
    """
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    normaliser = StreamNormaliser(route.model, include_usage)
    events = TimedEvents(route.backend, route.backend.stream(body, route.model))
    first = asyncio.ensure_future(events.next())
    try:
        await asyncio.wait((first,), timeout=route.backend.timeouts.hold_headers)
        if first.done():
            return _frames(normaliser, events, first.result())
    except BaseException:
        await _abandon(first, events)
        raise
    return _frames_after_heartbeats(normaliser, events, first)


async def _abandon(first: asyncio.Future[Any], events: TimedEvents) -> None:
    with anyio.CancelScope(shield=True):
        first.cancel()
        await asyncio.wait((first,))  # the generator must stop running before it is closed
        if not first.cancelled():
            first.exception()  # retrieved: it was reported (or is moot) already
        await events.aclose()


async def _frames_after_heartbeats(
    normaliser: StreamNormaliser, events: TimedEvents, first: asyncio.Future[list[Event] | None]
) -> AsyncGenerator[bytes, None]:
    interval = events.backend.timeouts.heartbeat
    try:
        while not first.done():
            await asyncio.wait((first,), timeout=interval)
            if not first.done():
                yield HEARTBEAT
        batch = first.result()
    except SovereignError as exc:
        log.warning("stream %s ended in an error event: %s", normaliser.id, exc)
        yield error_frame(exc)
        await events.aclose()
        return
    except BaseException:
        await _abandon(first, events)
        raise
    frames = _frames(normaliser, events, batch)
    try:
        async for frame in frames:
            yield frame
    finally:
        await frames.aclose()


async def _frames(
    normaliser: StreamNormaliser, events: TimedEvents, first: list[Event] | None
) -> AsyncGenerator[bytes, None]:
    batch = first
    try:
        while batch is not None:
            frames = b"".join(f for e in batch if (f := normaliser.feed(e)) is not None)
            if frames:
                yield frames
            batch = await events.next()
        yield normaliser.end()
    except SovereignError as exc:
        log.warning("stream %s ended in an error event: %s", normaliser.id, exc)
        yield error_frame(exc)
    except Exception as exc:  # a bug must still end the stream visibly, not truncate it
        yield error_frame(UpstreamError(f"sovereign failed mid-stream: {exc!r}"))
        raise
    finally:
        await events.aclose()
