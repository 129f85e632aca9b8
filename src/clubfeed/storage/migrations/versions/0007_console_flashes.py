"""console flashes

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27

A console form answers with a redirect (so a reload never repeats it), and what the
next page must say once, the new shared secret included, waits in this table, sealed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_flashes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("session_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_flashes")),
    )
    with op.batch_alter_table("console_flashes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_console_flashes_session_hash"), ["session_hash"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("console_flashes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_flashes_session_hash"))
    op.drop_table("console_flashes")
