"""The ingestion worker: claims files queued in vector stores, extracts, chunks and embeds
them, and writes their chunks; one per process, started with the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI

from ..config import Settings
from ..db import Database
from ..files.storage import LocalFileStorage
from ..ids import new_id
from ..vector_stores import store_files
from . import claims
from .chunking import chunk_text
from .embeddings import BATCH, EmbeddingError, embed
from .extract import ExtractionError, extract_text

__all__ = ["IngestionWorker", "start_ingestion"]

log = logging.getLogger(__name__)


class IngestionWorker:
    def __init__(
        self,
        *,
        db: Database,
        http: httpx.AsyncClient,
        storage: LocalFileStorage,
        settings: Settings,
    ) -> None:
        self.db = db
        self.http = http
        self.storage = storage
        self.model = settings.embedding_model
        self.lease = settings.run_lease_seconds
        self.poll = settings.run_poll_seconds
        self.slots = asyncio.Semaphore(settings.ingestion_concurrency)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{new_id('')[:8]}:ingest"
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._loop = asyncio.create_task(self._claim_loop())

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
        for task in list(self._tasks):
            task.cancel()
        pending = [self._loop] if self._loop else []
        await asyncio.gather(*pending, *self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await claims.release(self.db, self.worker)

    async def _claim_loop(self) -> None:
        while True:
            await self.slots.acquire()
            job = None
            try:
                job = await claims.claim(self.db, self.worker, self.lease)
            except Exception:
                log.exception("claiming a file to ingest failed")
            if job is None:
                self.slots.release()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)
                continue
            task = asyncio.create_task(self._run(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, job: claims.Claimed) -> None:
        beat = asyncio.create_task(self._heartbeat(job))
        try:
            await self._ingest(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ingesting %s into %s failed", job.file_id, job.store_id)
            error = {"code": "server_error", "message": "The file could not be ingested."}
            with contextlib.suppress(Exception):
                await claims.finish(self.db, self.worker, job, error=error)
        finally:
            beat.cancel()
            self.slots.release()

    async def _heartbeat(self, job: claims.Claimed) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            with contextlib.suppress(Exception):
                await claims.heartbeat(self.db, self.worker, job.seq, self.lease)

    async def _ingest(self, job: claims.Claimed) -> None:
        path = self.storage.path(job.file_id)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            await self._fail(job, "invalid_file", "The file's content is no longer stored.")
            return
        try:
            text = await asyncio.to_thread(extract_text, job.filename, data)
        except ExtractionError as exc:
            await self._fail(job, exc.code, exc.message)
            return
        pieces = await asyncio.to_thread(chunk_text, text, job.strategy)
        if not pieces:
            await self._fail(job, "invalid_file", f"{job.filename} contains no text to search.")
            return
        vectors: list[np.ndarray] = []
        try:
            for start in range(0, len(pieces), BATCH * 4):
                batch = [p.text for p in pieces[start : start + BATCH * 4]]
                vectors.append(await embed(self.http, self.model, batch))
        except EmbeddingError as exc:
            await self._fail(job, "server_error", f"Embedding failed: {exc}.")
            return
        matrix = np.vstack(vectors).astype(np.float32)
        rows: list[dict[str, Any]] = [
            {
                "vector_store_id": job.store_id,
                "file_id": job.file_id,
                "position": i,
                "text": piece.text,
                "tokens": piece.tokens,
                "embedding": matrix[i].tobytes(),
            }
            for i, piece in enumerate(pieces)
        ]
        usage = sum(len(r["text"].encode()) + len(r["embedding"]) for r in rows)
        done = await claims.finish(self.db, self.worker, job, chunks=rows, usage_bytes=usage)
        if done:
            log.info("ingested %s into %s: %d chunks", job.file_id, job.store_id, len(rows))

    async def _fail(self, job: claims.Claimed, code: str, message: str) -> None:
        await claims.finish(self.db, self.worker, job, error={"code": code, "message": message})


Stop = Callable[[], Awaitable[None]]


async def start_ingestion(app: FastAPI) -> Stop:
    worker = IngestionWorker(
        db=app.state.db,
        http=app.state.http,
        storage=app.state.file_storage,
        settings=app.state.settings,
    )
    app.state.ingestion = worker
    store_files.QUEUED_LISTENERS.append(worker.wake)
    worker.start()

    async def stop() -> None:
        with contextlib.suppress(ValueError):
            store_files.QUEUED_LISTENERS.remove(worker.wake)
        await worker.stop()

    return stop
