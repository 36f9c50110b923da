"""keyword indexes that rank a store's chunks without reading other stores' or TOAST

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 17:20:00

SQLite: the FTS5 table indexes the store id too, so a query names the store in MATCH and
FTS5 scores only that store's chunks. With the store UNINDEXED, a small store's search in
a database of 110,000 chunks scored every matching chunk of every store (~150 ms); now
under a millisecond. Existing rows are indexed again ('rebuild').

PostgreSQL: keyword ranking reads the tsvector of every chunk that matches. Stored with the
chunk, the row is over 2 kB and PostgreSQL moves the tsvector out of line (TOAST): each
read is then a lookup in the TOAST table, ~25 us a chunk, a quarter of a second for a query
matching 11,000 chunks. In a table holding only (seq, store, tsvector), kept in the row
(storage MAIN, toasted only past 8 kB), ranking reads a third as much. A trigger fills it
as chunks are inserted; the foreign key removes a chunk's row with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sqlite_fts(store_column: str) -> None:
    op.execute("DROP TRIGGER IF EXISTS chunks_fts_delete")
    op.execute("DROP TRIGGER IF EXISTS chunks_fts_insert")
    op.execute("DROP TABLE IF EXISTS chunks_fts")
    op.execute(
        f"CREATE VIRTUAL TABLE chunks_fts USING fts5(text, {store_column}, "
        "content='chunks', content_rowid='seq', tokenize='porter unicode61')"
    )
    op.execute(
        "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN "
        "INSERT INTO chunks_fts(rowid, text, vector_store_id) "
        "VALUES (new.seq, new.text, new.vector_store_id); END"
    )
    op.execute(
        "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN "
        "INSERT INTO chunks_fts(chunks_fts, rowid, text, vector_store_id) "
        "VALUES ('delete', old.seq, old.text, old.vector_store_id); END"
    )
    op.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        _sqlite_fts("vector_store_id")
        return
    op.execute(
        "CREATE TABLE chunk_keywords ("
        "seq BIGINT PRIMARY KEY REFERENCES chunks (seq) ON DELETE CASCADE, "
        "vector_store_id VARCHAR(64) NOT NULL, "
        "text_search TSVECTOR NOT NULL"
        ") WITH (toast_tuple_target = 8160)"
    )
    op.execute("ALTER TABLE chunk_keywords ALTER COLUMN text_search SET STORAGE MAIN")
    op.execute(
        "INSERT INTO chunk_keywords (seq, vector_store_id, text_search) "
        "SELECT seq, vector_store_id, text_search FROM chunks"
    )
    op.execute(
        "CREATE INDEX ix_chunk_keywords_text_search ON chunk_keywords USING gin (text_search)"
    )
    op.execute(
        "CREATE FUNCTION chunk_keywords_insert() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN "
        "INSERT INTO chunk_keywords (seq, vector_store_id, text_search) "
        "VALUES (NEW.seq, NEW.vector_store_id, to_tsvector('english', NEW.text)); "
        "RETURN NULL; "
        "END $$"
    )
    op.execute(
        "CREATE TRIGGER chunk_keywords_insert AFTER INSERT ON chunks "
        "FOR EACH ROW EXECUTE FUNCTION chunk_keywords_insert()"
    )
    op.execute("DROP INDEX ix_chunks_text_search")
    op.execute("ALTER TABLE chunks DROP COLUMN text_search")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        _sqlite_fts("vector_store_id UNINDEXED")
        return
    op.execute(
        "ALTER TABLE chunks ADD COLUMN text_search tsvector "
        "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
    )
    op.execute("CREATE INDEX ix_chunks_text_search ON chunks USING gin (text_search)")
    op.execute("DROP TRIGGER chunk_keywords_insert ON chunks")
    op.execute("DROP FUNCTION chunk_keywords_insert()")
    op.execute("DROP TABLE chunk_keywords")
