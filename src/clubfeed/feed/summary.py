"""Reconciliation: a count and checksum of a business's live records, whole or in buckets.

An integrator checks its copy against the server without a complete transfer, and
narrows a difference down by id bucket. The checksum is defined so that any client
can compute it over its own copy (the README gives it in Python):

- a record's hash is the first 8 bytes, read as a big-endian unsigned integer, of
  SHA-256 over its `id`, a newline, and its `modified_at` exactly as served (UTF-8);
- a set's checksum is the sum of its records' hashes modulo 2^64, written as 16
  lower-case hex digits;
- a record's bucket, of N (a power of two up to 65,536), is the first 2 bytes of
  SHA-256 over its `id` (big-endian), shifted right by 16 - log2(N) bits.

Each row keeps its hash as two 32-bit halves (a 64-bit sum would overflow either
database's integers) and its 16-bit bucket, written with the row, so a summary is
one scan of a partial index over live rows: sums, never hashing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import Connection

from clubfeed.catalogue import Resource
from clubfeed.feed import clock
from clubfeed.storage.engine import is_sqlite
from clubfeed.storage.fast import fetch_tuples
from clubfeed.timefmt import format_us

MAX_BUCKETS = 65_536
_BUCKET_BITS = 16
_LOW = 0xFFFFFFFF
_MOD = 1 << 64


def record_hash(record_id: str, modified_at: str) -> int:
    """The 64-bit hash of one record version (see the module's definition)."""
    digest = hashlib.sha256(f"{record_id}\n{modified_at}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def id_bucket(record_id: str) -> int:
    """The record's bucket of 65,536; of N, this shifted right by 16 - log2(N)."""
    return int.from_bytes(hashlib.sha256(record_id.encode()).digest()[:2], "big")


def row_columns(record_id: str, modified_us: int) -> dict[str, int]:
    """What a row of this version keeps for summaries: its hash's halves and its bucket."""
    value = record_hash(record_id, format_us(modified_us))
    return {"sum_hi": value >> 32, "sum_lo": value & _LOW, "id_bucket": id_bucket(record_id)}


def checksum_text(value: int) -> str:
    return f"{value % _MOD:016x}"


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


def _part(count: int, hi: int | None, lo: int | None) -> Part:
    return Part(count, ((int(hi or 0) << 32) + int(lo or 0)) % _MOD)


def summarize(
    conn: Connection, *, business_id: int, resource: Resource, buckets: int | None = None
) -> Summary:
    """Count and checksum the business's live records, in one snapshot with its clock.

    On PostgreSQL the caller's connection must read in REPEATABLE READ (one snapshot for
    both statements); SQLite's read transaction is a snapshot already.
    """
    now = clock.read(conn, business_id)
    table = resource.table
    where = "business_id = :b AND deleted_at IS NULL"
    if buckets is None:
        ((count, hi, lo),) = fetch_tuples(
            conn,
            f"SELECT count(*), sum(sum_hi), sum(sum_lo) FROM {table} WHERE {where}",
            {"b": business_id},
        )
        return Summary(_part(count, hi, lo), now.consistent_until_us, None)
    shift = _BUCKET_BITS - (buckets.bit_length() - 1)
    rows = fetch_tuples(
        conn,
        f"SELECT id_bucket / :width AS bucket, count(*), sum(sum_hi), sum(sum_lo) FROM {table} "
        f"WHERE {where} GROUP BY id_bucket / :width",
        {"b": business_id, "width": 1 << shift},
    )
    parts = [Part(0, 0)] * buckets
    for bucket, count, hi, lo in rows:
        parts[int(bucket)] = _part(count, hi, lo)
    total = Part(sum(p.count for p in parts), sum(p.checksum for p in parts) % _MOD)
    return Summary(total, now.consistent_until_us, parts)


def snapshot_options(conn: Connection) -> dict[str, str]:
    """Execution options giving `summarize` its one snapshot on this connection's database."""
    return {} if is_sqlite(conn) else {"isolation_level": "REPEATABLE READ"}
