"""Server-sent events of a response: ``event:`` and ``data:`` frames, no ``[DONE]``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from ..runs.events import Event, Subscription, encode_done, sse_stream

__all__ = ["response_sse"]

_DONE = encode_done()


async def response_sse(sub: Subscription, prelude: Iterable[Event]) -> AsyncIterator[bytes]:
    """The runs' SSE writer without its closing ``done`` frame: a Responses stream ends
    with its terminal event, as OpenAI's does."""
    async for frames in sse_stream(sub, prelude):
        if frames == _DONE:
            break
        yield frames
