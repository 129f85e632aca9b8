"""refresh successors

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

Clients that share one OAuth session across threads or workers refresh one grant at
once. A refresh token presented again within a short grace window answers with the
pair its first use produced instead of revoking the grant, so that pair is kept,
sealed under the old refresh token, which the database holds only as a hash.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("successor_sealed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_tokens", schema=None) as batch_op:
        batch_op.drop_column("successor_sealed")
