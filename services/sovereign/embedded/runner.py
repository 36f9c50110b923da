"""llama.cpp behind an async interface: every model call on the model's one worker thread.

Generations, tokenising and the warm-up all queue on that thread, so the model is never
touched from two threads at once; a stream whose client has gone stops at the next token.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from services.sovereign.embedded.worker import ModelWorker

__all__ = ["WARMUP_PROMPT", "Generation", "LlamaRunner", "Piece"]

WARMUP_PROMPT = "Question: Say hi.\nAnswer:"


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
        self.worker = ModelWorker("llama")

    def _load(self) -> None:
        from llama_cpp import Llama

        self.llm = Llama(
            model_path=str(self.model_path),
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            verbose=False,
        )

    def _warm_up(self) -> None:
        result = self.llm.create_completion(WARMUP_PROMPT, max_tokens=1, temperature=0.0)
        if not result["choices"][0]["text"] and not result["usage"]["completion_tokens"]:
            raise RuntimeError("the warm-up generation produced no token")

    async def load_and_warm_up(self) -> float:
        """Load the model and generate one token; the seconds it took. Raises on failure."""
        started = time.perf_counter()
        await self.worker.call(self._load)
        await self.worker.call(self._warm_up)
        return time.perf_counter() - started

    async def count_tokens(self, prompt: str) -> int:
        return await self.worker.call(lambda: len(self.llm.tokenize(prompt.encode(), add_bos=True)))

    async def complete(self, prompt: str, params: dict[str, Any]) -> Generation:
        result = await self.worker.call(self.llm.create_completion, prompt, **params)
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
            if stop.is_set():
                return  # the client left while this stream waited for the model
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

        work = self.worker.submit(produce)
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
            # Wait for the thread to let go of the model, even when this stream was
            # cancelled because its client disconnected, so the stream's end is its end.
            with anyio.CancelScope(shield=True):
                if not work.cancel():  # False once it runs: wait for it to finish
                    await asyncio.wrap_future(work)
