"""owner login throttle

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 07:34:39.286371
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import shared.columns


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('login_throttle',
    sa.Column('client', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', shared.columns.UtcDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('client')
    )


def downgrade() -> None:
    op.drop_table('login_throttle')
