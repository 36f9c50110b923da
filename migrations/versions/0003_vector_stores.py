"""vector stores, their files and batches, chunks with a full-text index

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 14:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('vector_stores',
    sa.Column('name', sa.String(length=256), nullable=True),
    sa.Column('expires_after', sa.JSON(), nullable=True),
    sa.Column('expires_at', sa.BigInteger(), nullable=True),
    sa.Column('last_active_at', sa.BigInteger(), nullable=True),
    sa.Column('chunks_version', sa.Integer(), nullable=False),
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_vector_stores')),
    sa.UniqueConstraint('id', name=op.f('uq_vector_stores_id'))
    )
    op.create_table('vector_store_files',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('vector_store_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('usage_bytes', sa.BigInteger(), nullable=False),
    sa.Column('last_error', sa.JSON(), nullable=True),
    sa.Column('chunking_strategy', sa.JSON(), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=True),
    sa.Column('batch_id', sa.String(length=64), nullable=True),
    sa.Column('worker_id', sa.String(length=64), nullable=True),
    sa.Column('lease_expires_at', sa.Float(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['vector_store_id'], ['vector_stores.id'], name=op.f('fk_vector_store_files_vector_store_id_vector_stores'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_vector_store_files')),
    sa.UniqueConstraint('vector_store_id', 'id', name=op.f('uq_vector_store_files_vector_store_id_id'))
    )
    with op.batch_alter_table('vector_store_files', schema=None) as batch_op:
        batch_op.create_index('ix_vector_store_files_store_seq', ['vector_store_id', 'seq'], unique=False)
        batch_op.create_index('ix_vector_store_files_batch_seq', ['batch_id', 'seq'], unique=False)
        batch_op.create_index('ix_vector_store_files_status', ['status'], unique=False)
        batch_op.create_index('ix_vector_store_files_id', ['id'], unique=False)
    op.create_table('vector_store_file_batches',
    sa.Column('vector_store_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['vector_store_id'], ['vector_stores.id'], name=op.f('fk_vector_store_file_batches_vector_store_id_vector_stores'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_vector_store_file_batches')),
    sa.UniqueConstraint('id', name=op.f('uq_vector_store_file_batches_id'))
    )
    op.create_table('chunks',
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    sa.Column('vector_store_id', sa.String(length=64), nullable=False),
    sa.Column('file_id', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('tokens', sa.Integer(), nullable=False),
    sa.Column('embedding', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['vector_store_id'], ['vector_stores.id'], name=op.f('fk_chunks_vector_store_id_vector_stores'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_chunks'))
    )
    with op.batch_alter_table('chunks', schema=None) as batch_op:
        batch_op.create_index('ix_chunks_store_file', ['vector_store_id', 'file_id'], unique=False)
    # Keyword search: FTS5 (porter stemming) kept in step by triggers on SQLite; a stored,
    # generated tsvector with a GIN index on PostgreSQL. Both stem English the same way.
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(
            "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, vector_store_id UNINDEXED, "
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
    else:
        op.execute(
            "ALTER TABLE chunks ADD COLUMN text_search tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
        )
        op.execute("CREATE INDEX ix_chunks_text_search ON chunks USING gin (text_search)")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("DROP TRIGGER IF EXISTS chunks_fts_delete")
        op.execute("DROP TRIGGER IF EXISTS chunks_fts_insert")
        op.execute("DROP TABLE IF EXISTS chunks_fts")
    op.drop_table('chunks')
    op.drop_table('vector_store_file_batches')
    op.drop_table('vector_store_files')
    op.drop_table('vector_stores')
