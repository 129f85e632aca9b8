"""The per-business change clock: the one ordering every write and every read agree on.

Each write transaction advances its business's clock row before writing, and the
row lock is held until commit, so for one business commit order, `change_seq`
order and `modified_at` order are the same. Nothing can commit later with a
`modified_at` at or below a value a reader has already seen.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from clubfeed.storage.engine import is_sqlite
from clubfeed.storage.fast import fetch_tuples
from clubfeed.timefmt import now_us

_ADVANCE_PG = (
    "UPDATE change_clock SET seq = seq + :n, last_us = GREATEST("
    "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT), last_us + 1) "
    "WHERE business_id = :b RETURNING seq, last_us"
)
# SQLite serializes writers on the database file, and every process sharing the file
# shares this machine's clock, so the application's clock is the database's clock.
_ADVANCE_SQLITE = (
    "UPDATE change_clock SET seq = seq + :n, last_us = max(:now, last_us + 1) "
    "WHERE business_id = :b RETURNING seq, last_us"
)
_EXTEND = text("UPDATE change_clock SET seq = seq + :n WHERE business_id = :b RETURNING seq")
_LOCK = text("SELECT seq FROM change_clock WHERE business_id = :b FOR UPDATE")
_READ = (
    "SELECT c.seq, c.last_us, coalesce(p.purged_until_us, 0) FROM change_clock c "
    "LEFT JOIN purge_points p ON p.business_id = c.business_id AND p.resource = :r "
    "WHERE c.business_id = :b"
)
_CREATE = text("INSERT INTO change_clock (business_id, seq, last_us) VALUES (:b, 0, 0)")


@dataclass(frozen=True)
class Tick:
    """Numbers a write transaction stamps its rows with: seqs from `first` on, one instant."""

    first: int
    us: int


@dataclass(frozen=True)
class Reading:
    """The clock as a reader sees it: every change up to `seq` has committed.

    `purged_until_us` is the retention's purge point of the resource it was read for
    (0 for none), read in the same statement.
    """

    seq: int
    last_us: int
    purged_until_us: int

    @property
    def consistent_until_us(self) -> int:
        """Nothing can later commit with a modified_at below this instant."""
        return self.last_us + 1


def create(conn: Connection, business_id: int) -> None:
    conn.execute(_CREATE, {"b": business_id})


def advance(conn: Connection, business_id: int, n: int) -> Tick:
    """Reserve `n` seqs and this transaction's instant; locks the clock row until commit."""
    if is_sqlite(conn):
        ((seq, last_us),) = fetch_tuples(
            conn, _ADVANCE_SQLITE, {"n": n, "b": business_id, "now": now_us()}
        )
    else:
        ((seq, last_us),) = fetch_tuples(conn, _ADVANCE_PG, {"n": n, "b": business_id})
    return Tick(first=seq - n + 1, us=last_us)


def lock(conn: Connection, business_id: int) -> None:
    """Take the business's write lock before `advance` (SQLite's BEGIN IMMEDIATE already holds it)."""
    if not is_sqlite(conn):
        conn.execute(_LOCK, {"b": business_id})


def extend(conn: Connection, business_id: int, n: int) -> int:
    """Reserve `n` more seqs at the instant `advance` already took; the first is returned."""
    seq: int = conn.execute(_EXTEND, {"n": n, "b": business_id}).scalar_one()
    return seq - n + 1


def read(conn: Connection, business_id: int, resource: str = "") -> Reading:
    """The clock, with `resource`'s purge point."""
    ((seq, last_us, purged_until_us),) = fetch_tuples(
        conn, _READ, {"b": business_id, "r": resource}
    )
    return Reading(seq=seq, last_us=last_us, purged_until_us=purged_until_us)
