"""Hybrid search over vector stores: vector similarity and keyword ranking (SQLite FTS5 or
PostgreSQL full text), fused by reciprocal rank. A result's ``score`` is its fused score
over the best a chunk can get (first in both rankings), so it lies in 0-1."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from sqlalchemy import select

from ..clock import now
from ..db import Database
from ..errors import UpstreamError, not_found
from ..ingestion.embeddings import EmbeddingError, embed
from ..tables import Chunk, File, VectorStore, VectorStoreFile
from .filters import matches
from .index import StoreVectors, VectorCache
from .keyword import CANDIDATES, keyword_ranked
from .stores import expired_error, is_expired, touch

__all__ = ["SearchHit", "search"]

RRF_K = 60
TOUCH_EVERY = 60
# From this many chunks the vector product (~1 ms per 10,000 of 384 dimensions) is worth
# a thread's handoff.
THREAD_FROM_CHUNKS = 20_000
_STORE_COLUMNS = (
    VectorStore.id,
    VectorStore.chunks_version,
    VectorStore.last_active_at,
    VectorStore.expires_at,
)


@dataclass
class SearchHit:
    seq: int
    file_id: str
    filename: str
    score: float
    text: str
    attributes: dict[str, Any] = field(default_factory=dict)

    def result(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "filename": self.filename,
            "score": round(self.score, 6),
            "attributes": self.attributes,
            "content": [{"type": "text", "text": self.text}],
        }


async def search(
    db: Database,
    http: httpx.AsyncClient,
    cache: VectorCache,
    *,
    model: str,
    store_ids: list[str],
    queries: list[str],
    max_results: int = 10,
    filters: dict[str, Any] | None = None,
    ranking: dict[str, Any] | None = None,
) -> list[SearchHit]:
    """The stores' best chunks for ``queries``; a store that is missing answers 404, one
    that has expired 400 (``vector_store_expired``)."""
    ranking = ranking or {}
    async with db.read() as session:
        rows = await session.execute(select(*_STORE_COLUMNS).where(VectorStore.id.in_(store_ids)))
        stores = {row.id: row for row in rows.all()}
    for store_id in store_ids:
        if store_id not in stores:
            raise not_found("vector store", store_id, "vector_store_id")
        if is_expired(stores[store_id]):
            cache.forget(store_id)  # never searched again: its vectors need not stay
            raise expired_error(store_id)
    stale = [sid for sid, row in stores.items() if (row.last_active_at or 0) < now() - TOUCH_EVERY]
    if stale:
        # last_active_at moves at most once a minute: searches need not take the write lock.
        async with db.write() as session:
            for row in (
                await session.scalars(select(VectorStore).where(VectorStore.id.in_(stale)))
            ).all():
                touch(row)
    versions = {sid: row.chunks_version for sid, row in stores.items()}
    indexes = [(sid, await cache.get(db, sid, versions[sid])) for sid in store_ids]
    if not any(len(vectors.seqs) for _, vectors in indexes):
        return []  # nothing ingested yet: no need to embed the query
    hybrid = ranking.get("hybrid_search") or {}
    embedding_weight = float(hybrid.get("embedding_weight", 1.0))
    text_weight = 0.0 if ranking.get("ranker") == "none" else float(hybrid.get("text_weight", 1.0))
    denied = await _denied_files(db, store_ids, filters)
    query_vectors = None
    if embedding_weight:
        try:
            query_vectors = await embed(http, model, queries)
        except EmbeddingError as exc:
            raise UpstreamError(f"The search query could not be embedded: {exc}.") from None

    # A large vector ranking runs on a worker thread (numpy lets go of the GIL) while the
    # keyword query runs here: the two take about as long as the slower. A small one is
    # quicker than the handoff. A ranking weighed at 0 is not run.
    vector: list[tuple[int, str, float]] = []
    vector_task = None
    if query_vectors is not None:
        if sum(len(vectors.seqs) for _, vectors in indexes) >= THREAD_FROM_CHUNKS:
            vector_task = asyncio.create_task(
                asyncio.to_thread(_vector_ranked, indexes, query_vectors, denied)
            )
        else:
            vector = _vector_ranked(indexes, query_vectors, denied)
    try:
        keyword = await keyword_ranked(db, store_ids, queries) if text_weight else []
    finally:
        if vector_task is not None:
            vector = await vector_task

    fused: dict[int, float] = {}
    for rank, (seq, _, _) in enumerate(vector[:CANDIDATES]):
        fused[seq] = fused.get(seq, 0.0) + embedding_weight / (RRF_K + rank + 1)
    for rank, (seq, store_id, file_id) in enumerate(keyword):
        if (store_id, file_id) in denied:
            continue
        fused[seq] = fused.get(seq, 0.0) + text_weight / (RRF_K + rank + 1)
    best = (embedding_weight + text_weight) / (RRF_K + 1) or 1.0
    threshold = float(ranking.get("score_threshold", 0.0))
    ordered = sorted(fused.items(), key=lambda item: -item[1])
    chosen = [(seq, min(1.0, value / best)) for seq, value in ordered]
    chosen = [(seq, score) for seq, score in chosen if score >= threshold][:max_results]
    if not chosen:
        return []
    found = await _chunk_details(db, [seq for seq, _ in chosen])
    hits = []
    for seq, score in chosen:
        if seq not in found:
            continue  # removed since it was ranked
        file_id, body, name, attrs = found[seq]
        hits.append(SearchHit(seq, file_id, name, score, body, attrs))
    return hits


def _vector_ranked(
    indexes: list[tuple[str, StoreVectors]],
    queries: np.ndarray,
    denied: set[tuple[str, str]],
) -> list[tuple[int, str, float]]:
    """(seq, store, cosine) of every store's best chunks, best first."""
    ranked: list[tuple[int, str, float]] = []
    for store_id, vectors in indexes:
        mask = None
        excluded = {file_id for sid, file_id in denied if sid == store_id}
        if excluded and len(vectors.files):
            mask = vectors.mask(set(vectors.files) - excluded)
        ranked += [(seq, store_id, score) for seq, score in vectors.top(queries, CANDIDATES, mask)]
    ranked.sort(key=lambda item: -item[2])
    return ranked


async def _denied_files(
    db: Database, store_ids: list[str], filters: dict[str, Any] | None
) -> set[tuple[str, str]]:
    """(store, file) pairs whose chunks must not be found: files not (or no longer)
    completed, and with ``filters``, the files whose attributes do not match. Without
    filters only the few files not completed are read, not every file of the store."""
    query = select(
        VectorStoreFile.vector_store_id,
        VectorStoreFile.id,
        VectorStoreFile.status,
        VectorStoreFile.attributes,
    ).where(VectorStoreFile.vector_store_id.in_(store_ids))
    if filters is None:
        query = query.where(VectorStoreFile.status != "completed")
    async with db.read() as session:
        rows = (await session.execute(query)).all()
    return {
        (store_id, file_id)
        for store_id, file_id, status, attrs in rows
        if status != "completed" or (filters is not None and not matches(filters, attrs or {}))
    }


async def _chunk_details(
    db: Database, seqs: list[int]
) -> dict[int, tuple[str, str, str, dict[str, Any]]]:
    """seq -> (file id, text, file name, the file's attributes in that store)."""
    async with db.read() as session:
        rows = await session.execute(
            select(
                Chunk.seq,
                Chunk.file_id,
                Chunk.text,
                File.filename,
                VectorStoreFile.attributes,
            )
            .outerjoin(File, File.id == Chunk.file_id)
            .outerjoin(
                VectorStoreFile,
                (VectorStoreFile.id == Chunk.file_id)
                & (VectorStoreFile.vector_store_id == Chunk.vector_store_id),
            )
            .where(Chunk.seq.in_(seqs))
        )
        return {
            seq: (file_id, body, name or "", attrs or {})
            for seq, file_id, body, name, attrs in rows.all()
        }
