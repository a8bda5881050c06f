"""funding rates: each futures contract's funding history, once per (symbol, funding time)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.columns


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'funding_rate',
        sa.Column('symbol', sa.String(), nullable=False),
        sa.Column('funding_time', shared.columns.UtcDateTime(), nullable=False),
        sa.Column('rate', shared.columns.Money(), nullable=False),
        sa.Column('mark_price', shared.columns.Money(), nullable=True),
        sa.PrimaryKeyConstraint('symbol', 'funding_time'),
    )


def downgrade() -> None:
    op.drop_table('funding_rate')
