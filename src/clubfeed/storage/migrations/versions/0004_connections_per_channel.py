"""connections per channel; tidy sessions and tokens

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

A business may revoke an app's shared-secret reads while approving it by OAuth (or
the other way round), so a connection is now one row per (business, integrator,
channel). Sessions lose a column nothing read; every token pair has a refresh token.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_constraint("pk_connections", type_="primary")
        batch_op.create_primary_key("pk_connections", ["business_id", "integrator_id", "via"])
    with op.batch_alter_table("admin_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_admin_sessions_admin_id")
        batch_op.drop_column("business_id")
    with op.batch_alter_table("oauth_tokens", schema=None) as batch_op:
        batch_op.alter_column(
            "refresh_hash", existing_type=sa.LargeBinary(length=32), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("oauth_tokens", schema=None) as batch_op:
        batch_op.alter_column(
            "refresh_hash", existing_type=sa.LargeBinary(length=32), nullable=True
        )
    with op.batch_alter_table("admin_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("business_id", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.create_index("ix_admin_sessions_admin_id", ["admin_id"], unique=False)
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_constraint("pk_connections", type_="primary")
        batch_op.create_primary_key("pk_connections", ["business_id", "integrator_id"])
