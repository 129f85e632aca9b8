"""summary buckets

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

A summary summed every live row of a business (one scan of a partial index), which
on SQLite cost several times a `count(*)` of the same rows. Now each write keeps one
row per business, resource and id bucket of 65,536 up to date (feed/summary.py), so a
summary sums at most 65,536 rows. This fills them from the rows' summary columns,
which 0009 and every write since have kept, and drops the index nothing reads now.
The rows keep their columns: a write needs its previous version's share, and a
previous version running beside this one still writes them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The resources and their tables as of this revision, named here rather than read from
# the catalogue, so that this migration means the same thing forever.
_TABLES = {
    "locations": "locations",
    "users": "users",
    "memberships": "memberships",
    "checkins": "checkins",
    "referrals": "referrals",
    "sales-categories": "sales_categories",
    "sales-subcategories": "sales_subcategories",
    "sales": "sales",
    "classes": "classes",
    "class-attendances": "class_attendances",
    "appointment-categories": "appointment_categories",
    "appointments": "appointments",
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Writers of the version still running lock their business's clock row first. A
        # SHARE lock waits for the writes in flight and holds new ones at that first step
        # (readers go on), so the totals are filled from rows that do not move, and no
        # writer holds a table that DROP INDEX below must lock.
        op.execute(sa.text("LOCK TABLE change_clock IN SHARE MODE"))
    op.create_table(
        "summary_buckets",
        sa.Column("business_id", sa.BigInteger(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("records", sa.BigInteger(), nullable=False),
        sa.Column("sum_hi", sa.BigInteger(), nullable=False),
        sa.Column("sum_lo", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", "resource", "bucket", name="pk_summary_buckets"),
        sqlite_with_rowid=False,
        postgresql_with={"fillfactor": 50},
    )
    for resource, table in _TABLES.items():
        op.execute(
            sa.text(
                "INSERT INTO summary_buckets "
                "(business_id, resource, bucket, records, sum_hi, sum_lo) "
                "SELECT business_id, :resource, id_bucket, count(*), sum(sum_hi), sum(sum_lo) "
                f"FROM {table} WHERE deleted_at IS NULL GROUP BY business_id, id_bucket"
            ).bindparams(resource=resource)
        )
    # Last: dropping an index locks its table against readers until the migration commits.
    for table in _TABLES.values():
        op.drop_index(f"ix_{table}_live_summary", table_name=table)


def downgrade() -> None:
    for table in _TABLES.values():
        op.create_index(
            f"ix_{table}_live_summary",
            table,
            ["business_id", "id_bucket", "sum_hi", "sum_lo", "deleted_at"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )
    op.drop_table("summary_buckets")
