"""candle store: the klines the worker fetched, for the site's trade pages and benchmark

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 00:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.columns


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'candle',
        sa.Column('market', sa.String(length=16), nullable=False),
        sa.Column('symbol', sa.String(), nullable=False),
        sa.Column('interval', sa.String(length=8), nullable=False),
        sa.Column('open_time', shared.columns.UtcDateTime(), nullable=False),
        *[sa.Column(name, shared.columns.Money(), nullable=False) for name in ('open', 'high', 'low', 'close')],
        sa.PrimaryKeyConstraint('market', 'symbol', 'interval', 'open_time'),
    )


def downgrade() -> None:
    op.drop_table('candle')
