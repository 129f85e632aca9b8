"""summaries

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

Each resource row keeps its version's checksum (two 32-bit halves) and its id's
bucket, so that GET /v1/{resource}/summary is one scan of a partial index over live
rows (feed/summary.py). Rows already stored get theirs here; the values are a
function of id and modified_at, so computing them in Python is exact.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BATCH = 5_000
# The resource tables as of this revision, named here rather than read from the catalogue,
# so that this migration means the same thing forever.
_TABLES = (
    "locations",
    "users",
    "memberships",
    "checkins",
    "referrals",
    "sales_categories",
    "sales_subcategories",
    "sales",
    "classes",
    "class_attendances",
    "appointment_categories",
    "appointments",
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _row_columns(record_id: str, modified_us: int) -> dict[str, int]:
    """The summary columns of a version, as defined at this revision (feed/summary.py then)."""
    modified_at = (_EPOCH + timedelta(microseconds=modified_us)).isoformat(timespec="microseconds")
    value = int.from_bytes(
        hashlib.sha256(f"{record_id}\n{modified_at}".encode()).digest()[:8], "big"
    )
    bucket = int.from_bytes(hashlib.sha256(record_id.encode()).digest()[:2], "big")
    return {"sum_hi": value >> 32, "sum_lo": value & 0xFFFFFFFF, "id_bucket": bucket}


def _backfill(table: str) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text(f"SELECT business_id, id, modified_at FROM {table}")).all()
    update = sa.text(
        f"UPDATE {table} SET sum_hi = :sum_hi, sum_lo = :sum_lo, id_bucket = :id_bucket "
        "WHERE business_id = :b AND id = :id"
    )
    for start in range(0, len(rows), _BATCH):
        batch = rows[start : start + _BATCH]
        conn.execute(
            update,
            [{"b": b, "id": i, **_row_columns(i, modified)} for b, i, modified in batch],
        )


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, kind in (("sum_hi", sa.BigInteger()), ("sum_lo", sa.BigInteger())):
                batch_op.add_column(sa.Column(name, kind, nullable=False, server_default="0"))
            batch_op.add_column(
                sa.Column("id_bucket", sa.Integer(), nullable=False, server_default="0")
            )
        _backfill(table)
        op.create_index(
            f"ix_{table}_live_summary",
            table,
            ["business_id", "id_bucket", "sum_hi", "sum_lo", "deleted_at"],
            unique=False,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        )


def downgrade() -> None:
    for table in _TABLES:
        op.drop_index(f"ix_{table}_live_summary", table_name=table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in ("id_bucket", "sum_lo", "sum_hi"):
                batch_op.drop_column(name)
