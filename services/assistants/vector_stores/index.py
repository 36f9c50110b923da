"""The vectors of each store's chunks, held in memory as one normalised float32 matrix for
brute-force similarity (100,000 chunks of 384 dimensions: about 10 ms on one core, memory
bound). A store's ``chunks_version`` is read on every search, so a replica never serves a
stale matrix."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select

from ..db import Database
from ..tables import Chunk

__all__ = ["StoreVectors", "VectorCache"]

# Rows read per query while loading: the blobs of one batch are the only copy held beside
# the matrix, so loading a store needs little more memory than keeping it.
LOAD_BATCH = 5_000


@dataclass(frozen=True)
class StoreVectors:
    version: int
    seqs: np.ndarray  # int64, one per chunk, ascending
    file_codes: np.ndarray  # int32, one per chunk: its file's index in ``files``
    files: list[str]  # the store's file ids, each once
    matrix: np.ndarray  # float32, chunks x dims, rows of unit length

    def mask(self, allowed: set[str]) -> np.ndarray:
        """True for the chunks of the ``allowed`` files."""
        keep = np.fromiter((f in allowed for f in self.files), dtype=bool, count=len(self.files))
        return keep[self.file_codes]

    def top(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> list[tuple[int, float]]:
        """The ``k`` best chunks (seq, cosine) for any of ``queries``."""
        if not len(self.seqs) or queries.shape[1] != self.matrix.shape[1]:
            return []
        if len(queries) == 1:  # a matrix-vector product, without a copy to take the max of
            scores = self.matrix @ queries[0]
        else:
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
            self._stores.pop(store_id, None)  # the stale matrix goes before the new one comes
            loaded = await _load(db, store_id, version)
            self._stores[store_id] = loaded
            return loaded

    def forget(self, store_id: str) -> None:
        self._stores.pop(store_id, None)


async def _load(db: Database, store_id: str, version: int) -> StoreVectors:
    """The store's chunks in batches by seq, written into a matrix sized up front."""
    async with db.read() as session:
        expected = await session.scalar(
            select(func.count()).where(Chunk.vector_store_id == store_id)
        )
        first = await session.scalar(
            select(Chunk.embedding).where(Chunk.vector_store_id == store_id).limit(1)
        )
        if not expected or first is None:
            return _empty(version)
        dims = len(first) // 4
        matrix = np.zeros((expected, dims), dtype=np.float32)
        seqs = np.zeros(expected, dtype=np.int64)
        file_codes = np.zeros(expected, dtype=np.int32)
        codes: dict[str, int] = {}
        filled, last = 0, -1
        while True:
            rows = (
                await session.execute(
                    select(Chunk.seq, Chunk.file_id, Chunk.embedding)
                    .where(Chunk.vector_store_id == store_id, Chunk.seq > last)
                    .order_by(Chunk.seq)
                    .limit(LOAD_BATCH)
                )
            ).all()
            if not rows:
                break
            last = rows[-1][0]
            if filled + len(rows) > len(matrix):  # chunks added since the count (PostgreSQL)
                grow = filled + len(rows)
                matrix = np.resize(matrix, (grow, dims))
                seqs, file_codes = np.resize(seqs, grow), np.resize(file_codes, grow)
            n = len(rows)
            blobs = [blob for _, _, blob in rows]
            if all(len(blob) == dims * 4 for blob in blobs):
                # One join per batch: a row-by-row fill costs ten times as much.
                joined = np.frombuffer(b"".join(blobs), dtype=np.float32)
                matrix[filled : filled + n] = joined.reshape(n, dims)
            else:  # rows from another embedding model stay zero: never similar to a query
                for i, blob in enumerate(blobs):
                    if len(blob) == dims * 4:
                        matrix[filled + i] = np.frombuffer(blob, dtype=np.float32)
            seqs[filled : filled + n] = [seq for seq, _, _ in rows]
            file_codes[filled : filled + n] = [
                codes.setdefault(file_id, len(codes)) for _, file_id, _ in rows
            ]
            filled += n
            del blobs
            del rows
    return StoreVectors(version, seqs[:filled], file_codes[:filled], list(codes), matrix[:filled])


def _empty(version: int) -> StoreVectors:
    return StoreVectors(
        version,
        np.zeros(0, np.int64),
        np.zeros(0, np.int32),
        [],
        np.zeros((0, 0), dtype=np.float32),
    )
