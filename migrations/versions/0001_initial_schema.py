"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 21:05:44.742261
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('assistants',
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=True),
    sa.Column('description', sa.String(length=512), nullable=True),
    sa.Column('instructions', sa.Text(), nullable=True),
    sa.Column('tools', sa.JSON(), nullable=False),
    sa.Column('tool_resources', sa.JSON(), nullable=True),
    sa.Column('temperature', sa.Float(), nullable=True),
    sa.Column('top_p', sa.Float(), nullable=True),
    sa.Column('response_format', sa.JSON(), nullable=True),
    sa.Column('reasoning_effort', sa.String(length=16), nullable=True),
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_assistants')),
    sa.UniqueConstraint('id', name=op.f('uq_assistants_id'))
    )
    op.create_table('threads',
    sa.Column('tool_resources', sa.JSON(), nullable=True),
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_threads')),
    sa.UniqueConstraint('id', name=op.f('uq_threads_id'))
    )
    op.create_table('messages',
    sa.Column('thread_id', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('content', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('assistant_id', sa.String(length=64), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('attachments', sa.JSON(), nullable=True),
    sa.Column('completed_at', sa.BigInteger(), nullable=True),
    sa.Column('incomplete_at', sa.BigInteger(), nullable=True),
    sa.Column('incomplete_details', sa.JSON(), nullable=True),
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['thread_id'], ['threads.id'], name=op.f('fk_messages_thread_id_threads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_messages')),
    sa.UniqueConstraint('id', name=op.f('uq_messages_id'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_run_id', ['run_id'], unique=False)
        batch_op.create_index('ix_messages_thread_seq', ['thread_id', 'seq'], unique=False)

    op.create_table('runs',
    sa.Column('thread_id', sa.String(length=64), nullable=False),
    sa.Column('assistant_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('required_action', sa.JSON(), nullable=True),
    sa.Column('last_error', sa.JSON(), nullable=True),
    sa.Column('expires_at', sa.BigInteger(), nullable=True),
    sa.Column('started_at', sa.BigInteger(), nullable=True),
    sa.Column('cancelled_at', sa.BigInteger(), nullable=True),
    sa.Column('failed_at', sa.BigInteger(), nullable=True),
    sa.Column('completed_at', sa.BigInteger(), nullable=True),
    sa.Column('incomplete_details', sa.JSON(), nullable=True),
    sa.Column('model', sa.String(length=256), nullable=False),
    sa.Column('instructions', sa.Text(), nullable=True),
    sa.Column('tools', sa.JSON(), nullable=False),
    sa.Column('usage', sa.JSON(), nullable=True),
    sa.Column('temperature', sa.Float(), nullable=True),
    sa.Column('top_p', sa.Float(), nullable=True),
    sa.Column('max_prompt_tokens', sa.Integer(), nullable=True),
    sa.Column('max_completion_tokens', sa.Integer(), nullable=True),
    sa.Column('truncation_strategy', sa.JSON(), nullable=True),
    sa.Column('tool_choice', sa.JSON(), nullable=True),
    sa.Column('parallel_tool_calls', sa.Boolean(), nullable=False),
    sa.Column('response_format', sa.JSON(), nullable=True),
    sa.Column('worker_id', sa.String(length=64), nullable=True),
    sa.Column('lease_expires_at', sa.Float(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['thread_id'], ['threads.id'], name=op.f('fk_runs_thread_id_threads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_runs')),
    sa.UniqueConstraint('id', name=op.f('uq_runs_id'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_status', ['status'], unique=False)
        batch_op.create_index('ix_runs_thread_seq', ['thread_id', 'seq'], unique=False)

    op.create_table('run_steps',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('thread_id', sa.String(length=64), nullable=False),
    sa.Column('assistant_id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('step_details', sa.JSON(), nullable=False),
    sa.Column('last_error', sa.JSON(), nullable=True),
    sa.Column('expired_at', sa.BigInteger(), nullable=True),
    sa.Column('cancelled_at', sa.BigInteger(), nullable=True),
    sa.Column('failed_at', sa.BigInteger(), nullable=True),
    sa.Column('completed_at', sa.BigInteger(), nullable=True),
    sa.Column('usage', sa.JSON(), nullable=True),
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_steps_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_run_steps')),
    sa.UniqueConstraint('id', name=op.f('uq_run_steps_id'))
    )
    with op.batch_alter_table('run_steps', schema=None) as batch_op:
        batch_op.create_index('ix_run_steps_run_seq', ['run_id', 'seq'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('run_steps', schema=None) as batch_op:
        batch_op.drop_index('ix_run_steps_run_seq')

    op.drop_table('run_steps')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_thread_seq')
        batch_op.drop_index('ix_runs_status')

    op.drop_table('runs')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_thread_seq')
        batch_op.drop_index('ix_messages_run_id')

    op.drop_table('messages')
    op.drop_table('threads')
    op.drop_table('assistants')
