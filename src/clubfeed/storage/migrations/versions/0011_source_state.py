"""source state

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

`clubfeed source run` keeps its watermarks, counts, skipped rows and the businesses it
made for new tenants in clubfeed's own database, so a restart resumes where it stopped.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_cursors",
        sa.Column("mapping", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("phase", sa.Text(), nullable=False),
        sa.Column("backfill_limit", sa.Text(), nullable=True),
        sa.Column("backfill_after", sa.Text(), nullable=True),
        sa.Column("watermark", sa.Text(), nullable=True),
        sa.Column("guarantee", sa.Text(), nullable=True),
        sa.Column("held_since", sa.BigInteger(), nullable=True),
        sa.Column("caught_up_at", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.BigInteger(), nullable=True),
        sa.Column("reconciled_at", sa.BigInteger(), nullable=True),
        sa.Column("reconcile_seconds", sa.BigInteger(), nullable=True),
        sa.Column("reconcile_repaired", sa.BigInteger(), nullable=True),
        sa.Column("reconcile_deleted", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("mapping", "resource", name="pk_source_cursors"),
    )
    op.create_table(
        "source_counts",
        sa.Column("mapping", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.Column("unchanged", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("mapping", "resource", "business_id", name="pk_source_counts"),
    )
    op.create_table(
        "source_problems",
        sa.Column("mapping", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("source_key", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("business_id", sa.BigInteger(), nullable=True),
        sa.Column("column_name", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "mapping", "resource", "tenant", "source_key", name="pk_source_problems"
        ),
    )
    op.create_table(
        "source_tenants",
        sa.Column("mapping", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("mapping", "tenant", name="pk_source_tenants"),
    )


def downgrade() -> None:
    for table in ("source_tenants", "source_problems", "source_counts", "source_cursors"):
        op.drop_table(table)
