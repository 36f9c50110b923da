"""In-process event bus from run executions to SSE responses, and the SSE wire format.

Events only flow inside the process that executes a run: a streamed run is claimed by the
process holding its stream, so subscribers never need another replica's events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

from orjson import dumps

__all__ = ["END", "Event", "EventBus", "Subscription", "encode_done", "encode_event", "sse_stream"]

# Put on a subscription when the run's execution stops emitting (terminal or waiting).
END = ("", None)

Event = tuple[str, Any]
MAX_FRAMES_PER_WRITE = 64


def encode_event(name: str, data: Any) -> bytes:
    # orjson: a streamed run encodes one event per token; json.dumps took ten times as long.
    return b"event: " + name.encode() + b"\ndata: " + dumps(data) + b"\n\n"


def encode_done() -> bytes:
    return b"event: done\ndata: [DONE]\n\n"


class Subscription:
    """One stream's view of one run's events."""

    def __init__(self, bus: EventBus, run_id: str) -> None:
        self.bus = bus
        self.run_id = run_id
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    def close(self) -> None:
        self.bus.unsubscribe(self)


class EventBus:
    def __init__(self) -> None:
        self._subscribers: dict[str, list[Subscription]] = {}

    def subscribe(self, run_id: str) -> Subscription:
        sub = Subscription(self, run_id)
        self._subscribers.setdefault(run_id, []).append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.run_id)
        if subs and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._subscribers[sub.run_id]

    def has_subscribers(self, run_id: str) -> bool:
        return run_id in self._subscribers

    def publish(self, run_id: str, name: str, data: Any) -> None:
        for sub in self._subscribers.get(run_id, ()):
            sub.queue.put_nowait((name, data))

    def end(self, run_id: str) -> None:
        for sub in self._subscribers.get(run_id, ()):
            sub.queue.put_nowait(END)


async def sse_stream(
    sub: Subscription, prelude: Iterable[Event], idle_ping_seconds: float = 15.0
) -> AsyncIterator[bytes]:
    """``prelude`` events, then the run's events until its execution ends, then ``done``."""
    try:
        for name, data in prelude:
            yield encode_event(name, data)
        queue = sub.queue
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                try:
                    # asyncio.timeout, not wait_for: no extra task for every token.
                    async with asyncio.timeout(idle_ping_seconds):
                        item = await queue.get()
                except TimeoutError:
                    # A comment line keeps proxies from closing a quiet stream.
                    yield b": ping\n\n"
                    continue
            if item is END:
                break
            # Whatever else is already queued goes out in the same write: under load one
            # socket send per event costs more than the events themselves.
            frames = [encode_event(*item)]
            while not queue.empty() and len(frames) < MAX_FRAMES_PER_WRITE:
                item = queue.get_nowait()
                if item is END:
                    break
                frames.append(encode_event(*item))
            yield b"".join(frames)
            if item is END:
                break
        yield encode_done()
    finally:
        sub.close()
