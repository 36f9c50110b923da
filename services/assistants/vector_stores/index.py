"""The vectors of each store's chunks, held in memory as one normalised float32 matrix for
brute-force similarity (100,000 chunks: a few milliseconds on one core). A store's
``chunks_version`` is read on every search, so a replica never serves a stale matrix."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from ..db import Database
from ..tables import Chunk

__all__ = ["StoreVectors", "VectorCache"]


@dataclass(frozen=True)
class StoreVectors:
    version: int
    seqs: np.ndarray  # int64, one per chunk
    file_ids: np.ndarray  # object (str), one per chunk
    matrix: np.ndarray  # float32, chunks x dims, rows of unit length

    def top(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> list[tuple[int, float]]:
        """The ``k`` best chunks (seq, cosine) for any of ``queries``."""
        if not len(self.seqs) or queries.shape[1] != self.matrix.shape[1]:
            return []
        scores = (self.matrix @ queries.T).max(axis=1)
        if allowed is not None:
            scores = np.where(allowed, scores, -np.inf)
        k = min(k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best])]
        return [(int(self.seqs[i]), float(scores[i])) for i in best if np.isfinite(scores[i])]


class VectorCache:
    def __init__(self) -> None:
        self._stores: dict[str, StoreVectors] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, db: Database, store_id: str, version: int) -> StoreVectors:
        cached = self._stores.get(store_id)
        if cached is not None and cached.version == version:
            return cached
        lock = self._locks.setdefault(store_id, asyncio.Lock())
        async with lock:
            cached = self._stores.get(store_id)
            if cached is not None and cached.version == version:
                return cached
            loaded = await _load(db, store_id, version)
            self._stores[store_id] = loaded
            return loaded

    def forget(self, store_id: str) -> None:
        self._stores.pop(store_id, None)


async def _load(db: Database, store_id: str, version: int) -> StoreVectors:
    async with db.read() as session:
        rows = (
            await session.execute(
                select(Chunk.seq, Chunk.file_id, Chunk.embedding)
                .where(Chunk.vector_store_id == store_id)
                .order_by(Chunk.seq)
            )
        ).all()
    if not rows:
        empty = np.zeros((0, 0), dtype=np.float32)
        return StoreVectors(version, np.zeros(0, np.int64), np.array([], dtype=object), empty)
    dims = len(rows[0][2]) // 4
    blobs = [blob for _, _, blob in rows]
    if all(len(blob) == dims * 4 for blob in blobs):
        # One copy of the joined bytes: a row-by-row fill costs ten times as much.
        matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(rows), dims).copy()
    else:  # some rows from another embedding model: never similar to this one's queries
        matrix = np.zeros((len(rows), dims), dtype=np.float32)
        for i, blob in enumerate(blobs):
            if len(blob) == dims * 4:
                matrix[i] = np.frombuffer(blob, dtype=np.float32)
    del blobs
    seqs = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    interned: dict[str, str] = {}  # one string per file, not one per chunk
    file_ids = np.array([interned.setdefault(r[1], r[1]) for r in rows], dtype=object)
    return StoreVectors(version, seqs, file_ids, matrix)
