"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-21 05:27:32.493388
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import shared.columns


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', shared.columns.UtcDateTime(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('signal_pk', sa.Integer(), nullable=True),
    sa.Column('trade_id', sa.Integer(), nullable=True),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('data', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_trade_id'), ['trade_id'], unique=False)

    op.create_table('latest_price',
    sa.Column('market', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('symbol', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('price', shared.columns.Money(), nullable=False),
    sa.Column('updated_at', shared.columns.UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('market', 'symbol')
    )
    op.create_table('runtime_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stake_usd', shared.columns.Money(), nullable=False),
    sa.Column('entry_mode', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('take_profit_target', sa.Integer(), nullable=False),
    sa.Column('fee_rate_spot', shared.columns.Money(), nullable=False),
    sa.Column('fee_rate_futures', shared.columns.Money(), nullable=False),
    sa.Column('slippage_bps', shared.columns.Money(), nullable=False),
    sa.Column('maintenance_margin_rate', shared.columns.Money(), nullable=False),
    sa.Column('pending_expiry_hours', shared.columns.Money(), nullable=False),
    sa.Column('max_trade_hours', shared.columns.Money(), nullable=False),
    sa.Column('candle_interval', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('starting_balance_usd', shared.columns.Money(), nullable=False),
    sa.Column('min_confidence', shared.columns.Money(), nullable=False),
    sa.Column('markets', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('symbols_allow', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('symbols_deny', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('max_open_trades', sa.Integer(), nullable=False),
    sa.Column('one_per_symbol_side', sa.Boolean(), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('signal_feed_url', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('site_title', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('site_description', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('updated_at', shared.columns.UtcDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('signal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), server_default='default', nullable=False),
    sa.Column('signal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('time', shared.columns.UtcDateTime(), nullable=True),
    sa.Column('received_at', shared.columns.UtcDateTime(), server_default=sa.func.current_timestamp(), nullable=False),
    sa.Column('symbol', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('side', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('market', sqlmodel.sql.sqltypes.AutoString(), server_default='SPOT', nullable=True),
    sa.Column('entry', shared.columns.Money(), nullable=True),
    sa.Column('take_profit', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('stop_loss', shared.columns.Money(), nullable=True),
    sa.Column('leverage', sa.Integer(), server_default='1', nullable=True),
    sa.Column('confidence', shared.columns.Money(), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), server_default='NEW', nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('raw', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('processed_at', shared.columns.UtcDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'signal_id', name='uq_signal_source_id')
    )
    with op.batch_alter_table('signal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signal_status'), ['status'], unique=False)

    op.create_table('worker_heartbeat',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('started_at', shared.columns.UtcDateTime(), nullable=True),
    sa.Column('last_tick_at', shared.columns.UtcDateTime(), nullable=True),
    sa.Column('last_success_at', shared.columns.UtcDateTime(), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('last_error_at', shared.columns.UtcDateTime(), nullable=True),
    sa.Column('behind_seconds', sa.Float(), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('hostname', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('feed_last_poll_at', shared.columns.UtcDateTime(), nullable=True),
    sa.Column('feed_last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('feed_received', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('trade',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('signal_pk', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('signal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('symbol', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('market', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('side', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('leverage', sa.Integer(), nullable=False),
    sa.Column('signal_time', shared.columns.UtcDateTime(), nullable=False),
    sa.Column('signal_entry', shared.columns.Money(), nullable=True),
    sa.Column('take_profit', shared.columns.Money(), nullable=False),
    sa.Column('stop_loss', shared.columns.Money(), nullable=False),
    sa.Column('stake_usd', shared.columns.Money(), nullable=False),
    sa.Column('fee_rate', shared.columns.Money(), nullable=False),
    sa.Column('entry_mode', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('slippage_bps', shared.columns.Money(), nullable=False),
    sa.Column('maintenance_margin_rate', shared.columns.Money(), nullable=False),
    sa.Column('pending_expiry_hours', shared.columns.Money(), nullable=False),
    sa.Column('max_trade_hours', shared.columns.Money(), nullable=False),
    sa.Column('candle_interval', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('entry_time', shared.columns.UtcDateTime(), nullable=True),
    sa.Column('entry_price', shared.columns.Money(), nullable=True),
    sa.Column('exit_time', shared.columns.UtcDateTime(), nullable=True),
    sa.Column('exit_price', shared.columns.Money(), nullable=True),
    sa.Column('fees_usd', shared.columns.Money(), nullable=True),
    sa.Column('pnl_usd', shared.columns.Money(), nullable=True),
    sa.Column('pnl_pct', shared.columns.Money(), nullable=True),
    sa.Column('ambiguous', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('last_candle_time', shared.columns.UtcDateTime(), nullable=True),
    sa.Column('created_at', shared.columns.UtcDateTime(), nullable=False),
    sa.Column('updated_at', shared.columns.UtcDateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['signal_pk'], ['signal.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('signal_pk')
    )
    with op.batch_alter_table('trade', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trade_exit_time'), ['exit_time'], unique=False)
        batch_op.create_index('ix_trade_market_symbol', ['market', 'symbol'], unique=False)
        batch_op.create_index(batch_op.f('ix_trade_status'), ['status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('trade', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trade_status'))
        batch_op.drop_index('ix_trade_market_symbol')
        batch_op.drop_index(batch_op.f('ix_trade_exit_time'))

    op.drop_table('trade')
    op.drop_table('worker_heartbeat')
    with op.batch_alter_table('signal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signal_status'))

    op.drop_table('signal')
    op.drop_table('runtime_settings')
    op.drop_table('latest_price')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_trade_id'))
        batch_op.drop_index(batch_op.f('ix_event_kind'))
        batch_op.drop_index(batch_op.f('ix_event_at'))

    op.drop_table('event')
