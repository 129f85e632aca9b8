"""purge points per resource

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

The purge point was the business's: once `clubfeed db purge` removed any resource's old
tombstones, a range of every resource from before them was refused (410), so a poller
that bookmarks a quiet resource by its newest record was refused until that resource
changed. Each resource now has its own point. An existing point is kept for every
resource, as it refused before: nothing that was refused becomes answerable.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# The resources as of this revision (a migration does not read the live catalogue).
_RESOURCES = (
    "locations",
    "users",
    "memberships",
    "checkins",
    "referrals",
    "sales-categories",
    "sales-subcategories",
    "sales",
    "classes",
    "class-attendances",
    "appointment-categories",
    "appointments",
)


def upgrade() -> None:
    op.create_table(
        "purge_points",
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("purged_until_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", "resource"),
    )
    for resource in _RESOURCES:
        op.execute(
            sa.text(
                "INSERT INTO purge_points (business_id, resource, purged_until_us) "
                "SELECT business_id, :r, purged_until_us FROM change_clock "
                "WHERE purged_until_us > 0"
            ).bindparams(r=resource)
        )
    with op.batch_alter_table("change_clock", schema=None) as batch_op:
        batch_op.drop_column("purged_until_us")


def downgrade() -> None:
    with op.batch_alter_table("change_clock", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purged_until_us", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.execute(
        "UPDATE change_clock SET purged_until_us = coalesce((SELECT max(p.purged_until_us) "
        "FROM purge_points p WHERE p.business_id = change_clock.business_id), 0)"
    )
    op.drop_table("purge_points")
