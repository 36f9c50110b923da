"""responses and conversations

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _keyed(_table: str) -> list[sa.Column]:
    return [
        sa.Column('seq', SEQ, autoincrement=True, nullable=False),
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('metadata', sa.JSON(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table('responses',
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('instructions', sa.Text(), nullable=True),
    sa.Column('previous_response_id', sa.String(length=64), nullable=True),
    sa.Column('conversation_id', sa.String(length=64), nullable=True),
    sa.Column('background', sa.Boolean(), nullable=False),
    sa.Column('tools', sa.JSON(), nullable=False),
    sa.Column('tool_choice', sa.JSON(), nullable=True),
    sa.Column('parallel_tool_calls', sa.Boolean(), nullable=False),
    sa.Column('temperature', sa.Float(), nullable=True),
    sa.Column('top_p', sa.Float(), nullable=True),
    sa.Column('max_output_tokens', sa.Integer(), nullable=True),
    sa.Column('truncation', sa.String(length=16), nullable=False),
    sa.Column('text', sa.JSON(), nullable=False),
    sa.Column('include', sa.JSON(), nullable=False),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.Column('output', sa.JSON(), nullable=False),
    sa.Column('usage', sa.JSON(), nullable=True),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.Column('incomplete_details', sa.JSON(), nullable=True),
    sa.Column('completed_at', sa.BigInteger(), nullable=True),
    sa.Column('worker_id', sa.String(length=64), nullable=True),
    sa.Column('lease_expires_at', sa.Float(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    *_keyed('responses'),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_responses')),
    sa.UniqueConstraint('id', name=op.f('uq_responses_id'))
    )
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.create_index('ix_responses_status', ['status'], unique=False)

    op.create_table('conversations',
    *_keyed('conversations'),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_conversations')),
    sa.UniqueConstraint('id', name=op.f('uq_conversations_id'))
    )

    op.create_table('response_items',
    sa.Column('response_id', sa.String(length=64), nullable=True),
    sa.Column('conversation_id', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    *_keyed('response_items'),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_response_items')),
    sa.UniqueConstraint('id', name=op.f('uq_response_items_id'))
    )
    with op.batch_alter_table('response_items', schema=None) as batch_op:
        batch_op.create_index(
            'ix_response_items_response_seq', ['response_id', 'kind', 'seq'], unique=False
        )
        batch_op.create_index(
            'ix_response_items_conversation_seq', ['conversation_id', 'seq'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('response_items', schema=None) as batch_op:
        batch_op.drop_index('ix_response_items_conversation_seq')
        batch_op.drop_index('ix_response_items_response_seq')
    op.drop_table('response_items')
    op.drop_table('conversations')
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.drop_index('ix_responses_status')
    op.drop_table('responses')
