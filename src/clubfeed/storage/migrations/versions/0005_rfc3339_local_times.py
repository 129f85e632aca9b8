"""event times with a seconds offset re-rendered in UTC

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Before this, an event time whose zone offset at that instant was not a whole minute
(local mean time: Adelaide before 1895) was stored as `1890-07-15T09:14:20.000000+09:14:20`,
which RFC 3339 cannot express and which a client could not write back. Such times are
now given in UTC. This re-renders the live rows already stored that way and restamps
them through their business's change clock, as a time-zone change does, so pollers
receive the corrected record once. The tables and fields are spelled out here rather
than read from the catalogue, so that this migration means the same thing forever.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_EVENT_TIMES = {
    "checkins": ("checked_in_at",),
    "sales": ("sold_at",),
    "class_attendances": ("class_at", "checked_in_at"),
    "appointments": ("appointment_at", "checked_in_at"),
}
_SECONDS_OFFSET = re.compile(r"[+-]\d\d:\d\d:\d\d$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ADVANCE = {
    "postgresql": "UPDATE change_clock SET seq = seq + :n, last_us = GREATEST("
    "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT), last_us + 1) "
    "WHERE business_id = :b RETURNING seq, last_us",
    "sqlite": "UPDATE change_clock SET seq = seq + :n, last_us = max(:now, last_us + 1) "
    "WHERE business_id = :b RETURNING seq, last_us",
}


def _utc(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(UTC).isoformat(timespec="microseconds")


def _rerendered(body: str, fields: tuple[str, ...]) -> str:
    """The body with each seconds-offset event time in UTC (unchanged when there is none).

    A record's own fields come before `extra` in its body, and JSON escapes every quote
    inside a string, so the first `"name":"` is the field itself.
    """
    for name in fields:
        match = re.search(f'"{name}":"([^"]*)"', body)
        if match is not None and _SECONDS_OFFSET.search(match.group(1)):
            start, end = match.span(1)
            body = body[:start] + _utc(match.group(1)) + body[end:]
    return body


def upgrade() -> None:
    conn = op.get_bind()
    # Every rendered time ends in an offset and a quote; only seconds offsets match these.
    patterns = {"plus": '%+__:__:__"%', "minus": '%-__:__:__"%'}
    changed: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    for table, fields in _EVENT_TIMES.items():
        rows = conn.execute(
            sa.text(
                f"SELECT business_id, id, body FROM {table} WHERE deleted_at IS NULL "
                "AND (body LIKE :plus OR body LIKE :minus) ORDER BY business_id, change_seq"
            ),
            patterns,
        )
        for business_id, record_id, body in rows:
            if (new := _rerendered(body, fields)) != body:
                changed[business_id].append((table, record_id, new))
    advance = sa.text(_ADVANCE[conn.dialect.name])
    for business_id, records in changed.items():
        params = {"n": len(records), "b": business_id}
        if conn.dialect.name == "sqlite":
            params["now"] = time.time_ns() // 1000
        seq, last_us = conn.execute(advance, params).one()
        modified_at = (_EPOCH + timedelta(microseconds=last_us)).isoformat(timespec="microseconds")
        for offset, (table, record_id, body) in enumerate(records, start=seq - len(records) + 1):
            restamped = body.rpartition(',"modified_at":')[0] + f',"modified_at":"{modified_at}"}}'
            conn.execute(
                sa.text(
                    f"UPDATE {table} SET change_seq = :seq, modified_at = :us, body = :body "
                    "WHERE business_id = :b AND id = :id"
                ),
                {
                    "seq": offset,
                    "us": last_us,
                    "body": restamped,
                    "b": business_id,
                    "id": record_id,
                },
            )


def downgrade() -> None:
    """Nothing to undo: the UTC renderings are valid RFC 3339 for every version."""
