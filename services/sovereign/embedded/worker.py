"""One dedicated thread per model: every call that touches the model runs there, in order.

Native inference libraries (llama.cpp, onnxruntime sessions with their scratch buffers)
are not safe to drive from two threads at once; tokenising counts too. Giving each model
exactly one thread makes that true by construction rather than by remembering a lock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["ModelWorker"]

T = TypeVar("T")


class ModelWorker:
    """Runs blocking calls on one named thread; a call still queued when its caller is
    cancelled never runs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)
        self.thread_ident: int | None = None

    def _enter(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self.thread_ident = threading.get_ident()
        return fn(*args, **kwargs)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: self._enter(fn, *args, **kwargs))

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        return self._pool.submit(self._enter, fn, *args)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
