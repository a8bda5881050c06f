"""several targets, trade tape and funding: the split and stop rule of each trade, its fills,
how its deciding candle was read (resolution), and its futures funding

Every trade closed before this migration gets its one fill (the whole position at its exit), so
`trades fills` lists every exit ever recorded.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 01:00:00.000000
"""

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

import shared.columns


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A closed trade's one fill, named as shared.exits names fills.
KINDS = {"CLOSED_TP": "tp1", "CLOSED_SL": "sl", "LIQUIDATED": "liquidated", "CLOSED_EXPIRED": "expired",
         "CLOSED_MANUAL": "manual"}


def upgrade() -> None:
    for table in ('runtime_settings', 'trade'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('tp_split', sa.String(), nullable=False, server_default='single'))
            batch.add_column(sa.Column('stop_after_tp', sa.String(), nullable=False, server_default='none'))
    with op.batch_alter_table('trade') as batch:
        batch.add_column(sa.Column('targets', sa.String(), nullable=True))
        batch.add_column(sa.Column('shares', sa.String(), nullable=True))
        batch.add_column(sa.Column('targets_hit', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('resolution', sa.String(), nullable=False, server_default='candle'))
        batch.add_column(sa.Column('futures_funding', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('funding_usd', shared.columns.Money(), nullable=False, server_default='0'))
    with op.batch_alter_table('runtime_settings') as batch:
        batch.add_column(sa.Column('futures_funding', sa.Boolean(), nullable=False, server_default=sa.true()))
    op.create_table(
        'trade_fill',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('trade_id', sa.Integer(), nullable=False),
        sa.Column('time', shared.columns.UtcDateTime(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        *[sa.Column(name, shared.columns.Money(), nullable=False) for name in ('price', 'share', 'fees_usd', 'pnl_usd')],
        sa.ForeignKeyConstraint(['trade_id'], ['trade.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_trade_fill_trade_id', 'trade_fill', ['trade_id'])
    kind = sa.case(*[(sa.column('status') == status, name) for status, name in KINDS.items()])
    trade = sa.table('trade', *[sa.column(c) for c in ('id', 'status', 'exit_time', 'exit_price', 'fees_usd',
                                                      'pnl_usd', 'targets_hit')])
    op.execute(sa.table('trade_fill', *[sa.column(c) for c in ('trade_id', 'time', 'kind', 'price', 'share',
                                                              'fees_usd', 'pnl_usd')]).insert().from_select(
        ['trade_id', 'time', 'kind', 'price', 'share', 'fees_usd', 'pnl_usd'],
        sa.select(trade.c.id, trade.c.exit_time, kind, trade.c.exit_price, sa.literal(Decimal(1), shared.columns.Money()), trade.c.fees_usd,
                  trade.c.pnl_usd).where(trade.c.status.in_(list(KINDS))).order_by(trade.c.id)))
    op.execute(trade.update().where(trade.c.status == 'CLOSED_TP').values(targets_hit=1))


def downgrade() -> None:
    op.drop_index('ix_trade_fill_trade_id', table_name='trade_fill')
    op.drop_table('trade_fill')
    with op.batch_alter_table('trade') as batch:
        for column in ('funding_usd', 'futures_funding', 'resolution', 'targets_hit', 'shares', 'targets',
                       'stop_after_tp', 'tp_split'):
            batch.drop_column(column)
    with op.batch_alter_table('runtime_settings') as batch:
        for column in ('futures_funding', 'stop_after_tp', 'tp_split'):
            batch.drop_column(column)
