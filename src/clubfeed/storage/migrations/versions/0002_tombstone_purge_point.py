"""tombstone purge point

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("change_clock", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purged_until_us", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("change_clock", schema=None) as batch_op:
        batch_op.drop_column("purged_until_us")
