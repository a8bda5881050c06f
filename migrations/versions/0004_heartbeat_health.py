"""heartbeat health: exchange failure streak and what waits for it

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.columns


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('worker_heartbeat', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failing_since', shared.columns.UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column('waiting_signals', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('stuck_trades', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('worker_heartbeat', schema=None) as batch_op:
        batch_op.drop_column('stuck_trades')
        batch_op.drop_column('waiting_signals')
        batch_op.drop_column('failing_since')
