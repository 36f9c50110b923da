"""Keyword ranking of a store's chunks: SQLite FTS5 (bm25) or PostgreSQL full text
(ts_rank), best first, for any of the query's words."""

from __future__ import annotations

import re

from sqlalchemy import bindparam, text

from ..db import Database

__all__ = ["CANDIDATES", "keyword_ranked", "query_terms"]

# How deep the ranking is read before fusing.
CANDIDATES = 100
MAX_TERMS = 64
_WORD = re.compile(r"\w+", re.UNICODE)
# PostgreSQL's English stop words (tsearch_data/english.stop), so SQLite drops the same
# words as to_tsquery('english'). They are in nearly every chunk and weigh nearly nothing
# in bm25, yet FTS5 would score every chunk holding one: "is" alone made a query rank all
# of a store's chunks.
_STOP_WORDS = (
    "i me my myself we our ours ourselves you your yours yourself yourselves he him his "
    "himself she her hers herself it its itself they them their theirs themselves what which "
    "who whom this that these those am is are was were be been being have has had having do "
    "does did doing a an the and but if or because as until while of at by for with about "
    "against between into through during before after above below to from up down in out on "
    "off over under again further then once here there when where why how all any both each "
    "few more most other some such no nor not only own same so than too very s t can will "
    "just don should now"
)
STOP_WORDS = frozenset(_STOP_WORDS.split())
# The FTS5 table indexes the store id (migration 0005), so MATCH names the stores and only
# their chunks are scored; the store column weighs nothing in bm25.
_SQLITE = text(
    "SELECT c.seq, c.vector_store_id, c.file_id FROM ("
    "SELECT rowid AS seq, bm25(chunks_fts, 1.0, 0.0) AS score FROM chunks_fts "
    "WHERE chunks_fts MATCH :match ORDER BY score LIMIT :limit"
    ") top JOIN chunks c ON c.seq = top.seq ORDER BY top.score"
)
# chunk_keywords holds only (seq, store, tsvector), so ranking reads narrow rows whose
# tsvector is in line (migration 0005 says why).
_POSTGRES = text(
    "SELECT c.seq, c.vector_store_id, c.file_id FROM ("
    "SELECT seq, ts_rank(text_search, to_tsquery('english', :match)) AS score "
    "FROM chunk_keywords WHERE vector_store_id IN :stores "
    "AND text_search @@ to_tsquery('english', :match) "
    "ORDER BY score DESC, seq LIMIT :limit"
    ") top JOIN chunks c ON c.seq = top.seq ORDER BY top.score DESC, top.seq"
).bindparams(bindparam("stores", expanding=True))


def query_terms(queries: list[str]) -> list[str]:
    """The distinct words of the queries worth searching for, in order."""
    seen: dict[str, None] = {}
    for query in queries:
        for word in _WORD.findall(query.lower()):
            if len(word) > 1 and word not in STOP_WORDS:
                seen[word] = None
    return list(seen)[:MAX_TERMS]


async def keyword_ranked(
    db: Database, store_ids: list[str], queries: list[str]
) -> list[tuple[int, str, str]]:
    """(seq, store, file) of the chunks that hold any query word, best first."""
    terms = query_terms(queries)
    if not terms:
        return []
    wanted = set(store_ids)
    if db.is_sqlite:
        words = " OR ".join(_quoted(t) for t in terms)
        stores = " OR ".join(_store_phrase(sid) for sid in store_ids)
        match = f"text : ({words}) AND vector_store_id : ({stores})"
        async with db.read() as session:
            rows = await session.execute(_SQLITE, {"match": match, "limit": CANDIDATES})
    else:
        words = [re.sub(r"[^\w]", "", t) for t in terms]
        match = " | ".join(w for w in words if w)
        async with db.read() as session:
            rows = await session.execute(
                _POSTGRES, {"match": match, "stores": list(store_ids), "limit": CANDIDATES}
            )
    # The store is checked again: two ids FTS5 reads as one token would both match.
    return [(int(seq), sid, fid) for seq, sid, fid in rows.all() if sid in wanted]


def _quoted(word: str) -> str:
    return '"' + word.replace('"', "") + '"'


def _store_phrase(store_id: str) -> str:
    """The store id as FTS5 indexed it: ``vs_`` and the rest, the rest alone when it is
    one token (the ``vs`` token is in every row: matching it would read them all)."""
    prefix, _, rest = store_id.partition("_")
    return _quoted(rest if prefix == "vs" and rest.isalnum() else store_id)
