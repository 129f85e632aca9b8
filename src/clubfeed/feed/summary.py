"""Reconciliation: a count and checksum of a business's live records, whole or in buckets.

An integrator checks its copy against the server without a complete transfer, and
narrows a difference down by id bucket. The checksum is defined in `checksums.py` so
that any client can compute it over its own copy (the README gives it in Python).

Each row keeps its hash as two 32-bit halves (a 64-bit sum would overflow either
database's integers) and its 16-bit bucket. Every write also adds its records' halves
to, and takes their previous versions' out of, one row per bucket of 65,536
(`summary_buckets`), in the write's own transaction. So a summary sums at most 65,536
rows however many records there are, and reads them in the same snapshot as the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from clubfeed.catalogue import Resource
from clubfeed.checksums import BUCKET_BITS, MOD, id_bucket, record_hash
from clubfeed.feed import clock
from clubfeed.storage import bulk
from clubfeed.storage.engine import is_sqlite
from clubfeed.storage.fast import fetch_tuples

_LOW = 0xFFFFFFFF


def row_columns(record_id: str, modified_at: str) -> dict[str, int]:
    """What a row of this version keeps for summaries: its hash's halves and its bucket.

    `modified_at` is the version's stamp as served (`format_us`), which a write has made
    once for all its records already.
    """
    return {**hash_columns(record_id, modified_at), "id_bucket": id_bucket(record_id)}


def hash_columns(record_id: str, modified_at: str) -> dict[str, int]:
    """The halves of a version's hash: the part of `row_columns` that depends on its stamp."""
    value = record_hash(record_id, modified_at)
    return {"sum_hi": value >> 32, "sum_lo": value & _LOW}


TOMBSTONE_COLUMNS = {"sum_hi": 0, "sum_lo": 0, "id_bucket": 0}
"""A tombstone's summary columns: it counts in no summary, so nothing is hashed for it."""


class Tally:
    """What one write changes in its resource's bucket rows, gathered record by record."""

    def __init__(self) -> None:
        self._buckets: dict[int, list[int]] = {}

    def add(self, share: Mapping[Any, Any], sign: int = 1) -> None:
        """Count a live version in (sign 1), or its replaced or deleted one out (sign -1).

        `share` holds the version's `id_bucket`, `sum_hi` and `sum_lo`, as `row_columns`
        made them (a row of a resource table holds them too).
        """
        entry = self._buckets.setdefault(share["id_bucket"], [0, 0, 0])
        entry[0] += sign
        entry[1] += sign * share["sum_hi"]
        entry[2] += sign * share["sum_lo"]

    def apply(self, conn: Connection, business_id: int, resource: Resource) -> None:
        """Add the gathered changes to the bucket rows, in the caller's write transaction.

        The caller holds the business's clock row, so no other write of the business
        touches these rows before it commits.
        """
        changed = [
            {"bucket": bucket, "records": n, "sum_hi": hi, "sum_lo": lo}
            for bucket, (n, hi, lo) in sorted(self._buckets.items())
            if n or hi or lo
        ]
        bulk.add_to_buckets(conn, business_id, resource.name, changed)


@dataclass(frozen=True)
class Part:
    count: int
    checksum: int


@dataclass(frozen=True)
class Summary:
    """Live records at one consistent point; `buckets` when asked for."""

    whole: Part
    consistent_until_us: int
    buckets: list[Part] | None


def _part(count: int | None, hi: int | None, lo: int | None) -> Part:
    """A part from its sums (NULL over no rows; PostgreSQL's sum of bigints is a numeric)."""
    return Part(int(count or 0), ((int(hi or 0) << 32) + int(lo or 0)) % MOD)


def summarize(
    conn: Connection, *, business_id: int, resource: Resource, buckets: int | None = None
) -> Summary:
    """Count and checksum the business's live records, in one snapshot with its clock.

    On PostgreSQL the caller's connection must read in REPEATABLE READ (one snapshot for
    both statements); SQLite's read transaction is a snapshot already.
    """
    now = clock.read(conn, business_id)
    where = "FROM summary_buckets WHERE business_id = :b AND resource = :r"
    params: dict[str, Any] = {"b": business_id, "r": resource.name}
    if buckets is None:
        ((count, hi, lo),) = fetch_tuples(
            conn, f"SELECT sum(records), sum(sum_hi), sum(sum_lo) {where}", params
        )
        return Summary(_part(count, hi, lo), now.consistent_until_us, None)
    shift = BUCKET_BITS - (buckets.bit_length() - 1)
    rows = fetch_tuples(
        conn,
        f"SELECT bucket / :width, sum(records), sum(sum_hi), sum(sum_lo) {where} "
        "GROUP BY bucket / :width",
        {**params, "width": 1 << shift},
    )
    parts = [Part(0, 0)] * buckets
    for bucket, count, hi, lo in rows:
        parts[int(bucket)] = _part(count, hi, lo)
    total = Part(sum(p.count for p in parts), sum(p.checksum for p in parts) % MOD)
    return Summary(total, now.consistent_until_us, parts)


def rebuild(conn: Connection, *, business_id: int, resource: Resource) -> int:
    """Recount the business's bucket rows of `resource` from its records; returns the live count.

    For a database an older clubfeed wrote to after the migration that made these rows
    (`clubfeed db resummarize`). It sums each record's own summary columns, which every
    version since migration 0009 writes (a record a pre-0009 process wrote after 0009 ran
    holds zeros there until it is written again). The caller holds the business's clock row.
    """
    params = {"b": business_id, "r": resource.name}
    conn.execute(
        text("DELETE FROM summary_buckets WHERE business_id = :b AND resource = :r"), params
    )
    rows = conn.execute(
        text(
            "INSERT INTO summary_buckets (business_id, resource, bucket, records, sum_hi, sum_lo) "
            "SELECT business_id, :r, id_bucket, count(*), sum(sum_hi), sum(sum_lo) "
            f"FROM {resource.table} WHERE business_id = :b AND deleted_at IS NULL "
            "GROUP BY business_id, id_bucket RETURNING records"
        ),
        params,
    ).scalars()
    return sum(int(n) for n in rows)


def snapshot_options(conn: Connection) -> dict[str, str]:
    """Execution options giving `summarize` its one snapshot on this connection's database."""
    return {} if is_sqlite(conn) else {"isolation_level": "REPEATABLE READ"}
