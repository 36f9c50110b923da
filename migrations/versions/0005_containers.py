"""code_interpreter containers of the Responses API

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('containers',
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('file_ids', sa.JSON(), nullable=False),
    sa.Column('last_active_at', sa.BigInteger(), nullable=False),
    sa.Column('seq', SEQ, autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_containers')),
    sa.UniqueConstraint('id', name=op.f('uq_containers_id'))
    )


def downgrade() -> None:
    op.drop_table('containers')
