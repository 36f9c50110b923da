"""Run a coroutine for a request, cancelling it if the client disconnects meanwhile.

Streaming responses already stop when the client goes (Starlette cancels the body); this
covers the time before a response starts: a non-streamed completion, or the wait for a
stream's first token, either of which can last minutes on a local model.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

__all__ = ["ClientDisconnected", "until_disconnected"]

T = TypeVar("T")


class ClientDisconnected(Exception):
    """The client went away before the answer was ready."""


async def _wait_for_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task  # the client is gone; nobody is left to tell of a failure
    raise ClientDisconnected()
