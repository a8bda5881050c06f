"""summary tables the public numbers are computed from (shared/summaries.py)

The rows themselves are built from the trades by `signalproof db upgrade` (and the worker at
start) whenever they do not match the trades: see `shared.summaries.is_current`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 21:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.columns


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _money(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, shared.columns.Money(), nullable=nullable)


def _tally() -> list[sa.Column]:
    return [sa.Column('trades', sa.Integer(), nullable=False), sa.Column('wins', sa.Integer(), nullable=False),
            sa.Column('losses', sa.Integer(), nullable=False), _money('pnl'), _money('gross_profit'),
            _money('gross_loss')]


def upgrade() -> None:
    op.create_table(
        'summary_day',
        sa.Column('scope', sa.String(length=8), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        *_tally(), _money('best'), _money('worst'),
        sa.Column('ambiguous', sa.Integer(), nullable=False),
        sa.Column('first_entry', shared.columns.UtcDateTime(), nullable=False),
        sa.Column('last_exit', shared.columns.UtcDateTime(), nullable=False),
        _money('high'),
        sa.Column('high_time', shared.columns.UtcDateTime(), nullable=True),
        _money('low'),
        sa.Column('low_at', sa.Integer(), nullable=False),
        sa.Column('low_time', shared.columns.UtcDateTime(), nullable=True),
        _money('fall'), _money('trough'),
        *[sa.Column(name, sa.Integer(), nullable=False)
          for name in ('trough_at', 'win_lead', 'win_tail', 'win_run', 'loss_lead', 'loss_tail', 'loss_run')],
        sa.PrimaryKeyConstraint('scope', 'day'),
    )
    op.create_table(
        'summary_breakdown',
        sa.Column('origin', sa.String(length=16), nullable=False),
        sa.Column('symbol', sa.String(), nullable=False),
        sa.Column('side', sa.String(length=8), nullable=False),
        sa.Column('status', sa.String(length=32), nullable=False),
        *_tally(), _money('best', nullable=True), _money('worst', nullable=True),
        sa.Column('ambiguous', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('origin', 'symbol', 'side', 'status'),
    )
    op.create_table(
        'summary_bin',
        sa.Column('origin', sa.String(length=16), nullable=False),
        sa.Column('measure', sa.String(length=8), nullable=False),
        sa.Column('bin', sa.Integer(), nullable=False),
        sa.Column('trades', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('origin', 'measure', 'bin'),
    )
    op.create_table(
        'summary_state',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('max_trade_id', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    # "Live only" filters, and the site's "live tracking starts" marker (min signal_time).
    op.create_index('ix_trade_origin_signal_time', 'trade', ['origin', 'signal_time'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_trade_origin_signal_time', table_name='trade')
    op.drop_table('summary_state')
    op.drop_table('summary_bin')
    op.drop_table('summary_breakdown')
    op.drop_table('summary_day')
