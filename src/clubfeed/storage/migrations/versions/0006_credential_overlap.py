"""rotated credentials overlap

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27

A rotated shared secret, ingest key or integrator key may keep working for a while
beside its successor, so that clients can switch without an outage: each keeps the
previous credential's hash and the instant it stops working.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_PREVIOUS = {
    "businesses": ("previous_shared_secret", "previous_ingest_key"),
    "integrators": ("previous_key",),
}


def upgrade() -> None:
    for table, prefixes in _PREVIOUS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for prefix in prefixes:
                batch_op.add_column(sa.Column(f"{prefix}_hash", sa.LargeBinary(32), nullable=True))
                batch_op.add_column(sa.Column(f"{prefix}_until", sa.BigInteger(), nullable=True))
                batch_op.create_unique_constraint(f"uq_{table}_{prefix}_hash", [f"{prefix}_hash"])


def downgrade() -> None:
    for table, prefixes in _PREVIOUS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for prefix in prefixes:
                batch_op.drop_constraint(f"uq_{table}_{prefix}_hash", type_="unique")
                batch_op.drop_column(f"{prefix}_until")
                batch_op.drop_column(f"{prefix}_hash")
