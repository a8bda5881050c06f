"""checkpoints of the ledger's head (signed, anchored)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.columns


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'checkpoint',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.Column('time', shared.columns.UtcDateTime(), nullable=False),
        sa.Column('signature', sa.String(), nullable=True),
        sa.Column('public_key', sa.String(), nullable=True),
        sa.Column('anchor_status', sa.String(), nullable=True),
        sa.Column('anchor_detail', sa.String(), nullable=True),
        sa.Column('created_at', shared.columns.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_checkpoint_seq', 'checkpoint', ['seq'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_checkpoint_seq', table_name='checkpoint')
    op.drop_table('checkpoint')
