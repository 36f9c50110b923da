"""llama.cpp behind an async interface: one generation at a time, on a worker thread.

A llama.cpp context is not safe to share between threads, so generations are serialised
by a lock; a stream whose client has gone is stopped at the next token.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

__all__ = ["Generation", "LlamaRunner", "Piece"]


@dataclass(frozen=True, slots=True)
class Piece:
    text: str
    finish_reason: str | None


@dataclass(frozen=True, slots=True)
class Generation:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class LlamaRunner:
    def __init__(self, model_path: Path, *, n_ctx: int = 2048, n_threads: int | None = None):
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, min(4, os.cpu_count() or 1))
        self.llm: Any = None
        self.lock = asyncio.Lock()

    def load(self) -> None:
        """Blocking: map the model into memory (run it on a thread)."""
        from llama_cpp import Llama

        self.llm = Llama(
            model_path=str(self.model_path),
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            verbose=False,
        )

    def count_tokens(self, prompt: str) -> int:
        return len(self.llm.tokenize(prompt.encode(), add_bos=True))

    async def complete(self, prompt: str, params: dict[str, Any]) -> Generation:
        async with self.lock:
            result = await asyncio.to_thread(self.llm.create_completion, prompt, **params)
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        return Generation(
            text=choice["text"],
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
        )

    async def stream(self, prompt: str, params: dict[str, Any]) -> AsyncIterator[Piece]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def produce() -> None:
            try:
                for chunk in self.llm.create_completion(prompt, stream=True, **params):
                    choice = chunk["choices"][0]
                    item = Piece(choice.get("text") or "", choice.get("finish_reason"))
                    loop.call_soon_threadsafe(queue.put_nowait, ("piece", item))
                    if stop.is_set():
                        break
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
            except Exception as exc:  # handed to the consumer, which reports it
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

        async with self.lock:
            worker = loop.run_in_executor(None, produce)
            try:
                while True:
                    kind, item = await queue.get()
                    if kind == "end":
                        return
                    if kind == "error":
                        raise item
                    yield item
            finally:
                stop.set()
                # Wait for the thread to let go of the model before the next generation,
                # even when this stream was cancelled because its client disconnected.
                with anyio.CancelScope(shield=True):
                    await worker
