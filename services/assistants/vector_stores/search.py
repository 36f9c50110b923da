"""Hybrid search over vector stores: vector similarity and keyword ranking (SQLite FTS5 or
PostgreSQL full text), fused by reciprocal rank. A result's ``score`` is its fused score
over the best a chunk can get (first in both rankings), so it lies in 0-1."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from sqlalchemy import bindparam, select, text

from ..clock import now
from ..db import Database
from ..errors import UpstreamError, not_found
from ..ingestion.embeddings import EmbeddingError, embed
from ..tables import Chunk, File, VectorStore, VectorStoreFile
from .filters import matches
from .index import VectorCache
from .stores import touch

__all__ = ["SearchHit", "search"]

RRF_K = 60
OVERFETCH = 1000
_SQLITE_ANY_STORE = text(
    "SELECT c.seq, c.vector_store_id, c.file_id FROM ("
    "SELECT rowid AS seq, bm25(chunks_fts) AS score FROM chunks_fts "
    f"WHERE chunks_fts MATCH :match ORDER BY score LIMIT {OVERFETCH}"
    ") top JOIN chunks c ON c.seq = top.seq ORDER BY top.score"
)
TOUCH_EVERY = 60
_STORE_COLUMNS = (VectorStore.id, VectorStore.chunks_version, VectorStore.last_active_at)
# How deep each ranking is read before fusing.
CANDIDATES = 100
_WORD = re.compile(r"\w+", re.UNICODE)


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
    ranking = ranking or {}
    async with db.read() as session:
        rows = await session.execute(select(*_STORE_COLUMNS).where(VectorStore.id.in_(store_ids)))
        stores = {row.id: row for row in rows.all()}
    for store_id in store_ids:
        if store_id not in stores:
            raise not_found("vector store", store_id, "vector_store_id")
    stale = [sid for sid, row in stores.items() if (row.last_active_at or 0) < now() - TOUCH_EVERY]
    if stale:
        # last_active_at moves at most once a minute: searches need not take the write lock.
        async with db.write() as session:
            for row in (
                await session.scalars(select(VectorStore).where(VectorStore.id.in_(stale)))
            ).all():
                touch(row)
    versions = {sid: row.chunks_version for sid, row in stores.items()}
    async with db.read() as session:
        files = (
            await session.execute(
                select(
                    VectorStoreFile.vector_store_id,
                    VectorStoreFile.id,
                    VectorStoreFile.attributes,
                    File.filename,
                )
                .join(File, File.id == VectorStoreFile.id)
                .where(
                    VectorStoreFile.vector_store_id.in_(store_ids),
                    VectorStoreFile.status == "completed",
                )
            )
        ).all()
    info = {(sid, fid): (name, attrs or {}) for sid, fid, attrs, name in files}
    allowed = {
        key for key, (_, attrs) in info.items() if filters is None or matches(filters, attrs)
    }
    if not allowed:
        return []
    try:
        query_vectors = await embed(http, model, queries)
    except EmbeddingError as exc:
        raise UpstreamError(f"The search query could not be embedded: {exc}.") from None

    vector_ranked: list[tuple[int, float]] = []
    seq_store: dict[int, str] = {}
    for store_id in store_ids:
        vectors = await cache.get(db, store_id, versions[store_id])
        mask = None
        if len(allowed) < len(info) and len(vectors.file_ids):
            ok = np.array([(store_id, f) in allowed for f in vectors.file_ids], dtype=bool)
            mask = ok
        for seq, score in vectors.top(query_vectors, CANDIDATES, mask):
            vector_ranked.append((seq, score))
            seq_store[seq] = store_id
    vector_ranked.sort(key=lambda item: -item[1])
    keyword_ranked = await _keyword(db, store_ids, queries)

    embedding_weight = float((ranking.get("hybrid_search") or {}).get("embedding_weight", 1.0))
    text_weight = float((ranking.get("hybrid_search") or {}).get("text_weight", 1.0))
    if ranking.get("ranker") == "none":
        text_weight = 0.0
    fused: dict[int, float] = {}
    for rank, (seq, _) in enumerate(vector_ranked[:CANDIDATES]):
        fused[seq] = fused.get(seq, 0.0) + embedding_weight / (RRF_K + rank + 1)
    for rank, (seq, store_id, file_id) in enumerate(keyword_ranked):
        if (store_id, file_id) not in allowed:
            continue
        seq_store[seq] = store_id
        fused[seq] = fused.get(seq, 0.0) + text_weight / (RRF_K + rank + 1)
    best = (embedding_weight + text_weight) / (RRF_K + 1) or 1.0
    threshold = float(ranking.get("score_threshold", 0.0))
    ordered = sorted(fused.items(), key=lambda item: -item[1])
    chosen = [(seq, min(1.0, value / best)) for seq, value in ordered]
    chosen = [(seq, score) for seq, score in chosen if score >= threshold][:max_results]
    if not chosen:
        return []
    async with db.read() as session:
        texts = {
            seq: (file_id, body)
            for seq, file_id, body in (
                await session.execute(
                    select(Chunk.seq, Chunk.file_id, Chunk.text).where(
                        Chunk.seq.in_([seq for seq, _ in chosen])
                    )
                )
            ).all()
        }
    hits = []
    for seq, score in chosen:
        if seq not in texts:
            continue  # removed since it was ranked
        file_id, body = texts[seq]
        name, attrs = info.get((seq_store[seq], file_id), ("", {}))
        hits.append(SearchHit(seq, file_id, name, score, body, attrs))
    return hits


def _terms(queries: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for query in queries:
        for word in _WORD.findall(query.lower()):
            if len(word) > 1:
                seen[word] = None
    return list(seen)[:64]


async def _keyword(
    db: Database, store_ids: list[str], queries: list[str]
) -> list[tuple[int, str, str]]:
    """Chunks ranked by keyword relevance (any query word), best first."""
    terms = _terms(queries)
    if not terms:
        return []
    if db.is_sqlite:
        match = " OR ".join('"' + t.replace('"', "") + '"' for t in terms)
        async with db.read() as session:
            # The best matches of any store first, their store read from the chunks only
            # for those: filtering on the FTS table's store column reads every match's
            # row (~100 ms at 100,000 chunks). Only when other stores crowd this one out
            # of the first OVERFETCH is the filtered query needed.
            top = (await session.execute(_SQLITE_ANY_STORE, {"match": match})).all()
            wanted = set(store_ids)
            ranked = [(int(seq), sid, fid) for seq, sid, fid in top if sid in wanted]
            if len(ranked) >= CANDIDATES or len(top) < OVERFETCH:
                return ranked[:CANDIDATES]
        stmt = text(
            "SELECT c.seq, c.vector_store_id, c.file_id FROM chunks_fts f "
            "JOIN chunks c ON c.seq = f.rowid "
            "WHERE chunks_fts MATCH :match AND f.vector_store_id IN :stores "
            "ORDER BY bm25(chunks_fts) LIMIT :limit"
        ).bindparams(bindparam("stores", expanding=True))
    else:
        words = [re.sub(r"[^\w]", "", t) for t in terms]
        match = " | ".join(w for w in words if w)
        stmt = text(
            "SELECT seq, vector_store_id, file_id FROM chunks "
            "WHERE vector_store_id IN :stores "
            "AND text_search @@ to_tsquery('english', :match) "
            "ORDER BY ts_rank_cd(text_search, to_tsquery('english', :match)) DESC, seq "
            "LIMIT :limit"
        ).bindparams(bindparam("stores", expanding=True))
    async with db.read() as session:
        rows = await session.execute(
            stmt, {"match": match, "stores": list(store_ids), "limit": CANDIDATES}
        )
        return [(int(seq), store_id, file_id) for seq, store_id, file_id in rows.all()]
