"""Where ingest stands against the database's own bulk load, and where its time goes.

The baseline is the fastest the database takes the same rows: check-ins of the measured
business exactly as clubfeed stored them (rendered bodies, summary columns and all),
loaded into an empty table of the same shape and indexes in one transaction: COPY on
PostgreSQL, one executemany on SQLite. clubfeed's ingest rate over the baseline's is a
ratio that survives a noisy machine, where either rate alone does not.

The breakdown writes a fresh business's check-ins in 10,000-record batches in this
process, through the functions the API's batch endpoint calls (decode, validated, the
write transaction), timing each step. Whatever the request costs beyond that (HTTP,
the body's bytes, the thread hop) is the HTTP rate's per-record time minus this.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Engine, text

from bench import databases, dataset
from clubfeed import catalogue, tenants
from clubfeed.feed import clock
from clubfeed.ingest import validate, write
from clubfeed.storage import bulk
from clubfeed.storage.engine import make_engine, read_connection, write_transaction

BREAKDOWN_CHECKINS = 50_000

STEPS = (
    "decode",
    "rules",
    "clock",
    "existing rows",
    "references",
    "record columns",
    "rendering",
    "row statements",
    "summary totals",
    "commit",
    "other",
)
"""The breakdown's steps, in the order a batch meets them."""


@dataclass(frozen=True)
class Baseline:
    rows: int
    seconds: float

    @property
    def records_per_s(self) -> float:
        return self.rows / self.seconds


@dataclass
class Breakdown:
    """Seconds spent in each step over `records` check-ins written in-process."""

    records: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STEPS, 0.0))

    def us_per_record(self, step: str) -> float:
        return self.seconds[step] / self.records * 1e6

    @property
    def total_us_per_record(self) -> float:
        return sum(self.seconds.values()) / self.records * 1e6


@dataclass(frozen=True)
class IngestParts:
    baseline: Baseline
    breakdown: Breakdown


def _sqlite_baseline(url: str, business_id: int) -> Baseline:
    engine = make_engine(url)
    try:
        conn: Any = engine.raw_connection()
        try:
            ddl = conn.execute(
                "SELECT type, sql FROM sqlite_master WHERE tbl_name = 'checkins' AND sql IS NOT NULL"
            ).fetchall()
            for kind, sql in ddl:
                renamed = sql.replace("checkins", "bench_bulk", 2 if kind == "index" else 1)
                conn.execute(renamed)
            rows = conn.execute(
                "SELECT * FROM checkins WHERE business_id = ?", (business_id,)
            ).fetchall()
            marks = ", ".join("?" * len(rows[0]))
            started = time.perf_counter()
            # clubfeed's engine leaves the driver in autocommit and begins its own transactions.
            conn.execute("BEGIN")
            conn.executemany(f"INSERT INTO bench_bulk VALUES ({marks})", rows)
            conn.commit()
            seconds = time.perf_counter() - started
            conn.execute("DROP TABLE bench_bulk")
            conn.commit()
        finally:
            conn.close()
    finally:
        engine.dispose()
    return Baseline(len(rows), seconds)


def _postgres_baseline(url: str, business_id: int) -> Baseline:
    with psycopg.connect(databases.libpq_url(url)) as conn:
        conn.execute("CREATE TABLE bench_bulk (LIKE checkins INCLUDING ALL)")
        conn.commit()
        with conn.cursor(binary=True) as cursor:
            cursor.execute("SELECT * FROM checkins WHERE business_id = %s", (business_id,))
            rows = cursor.fetchall()
        types = _column_types(conn)
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy("COPY bench_bulk FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
        conn.commit()
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bench_bulk")
        conn.commit()
    return Baseline(len(rows), seconds)


def _column_types(conn: psycopg.Connection[Any]) -> list[str]:
    found = conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'checkins'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
    ).fetchall()
    return [name for (name,) in found]


@contextmanager
def timing(owner: Any, name: str, seconds: dict[str, float], step: str) -> Iterator[None]:
    """Add the time of every call of `owner.name` to `seconds[step]` while inside."""
    original: Callable[..., Any] = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds[step] += time.perf_counter() - started

    setattr(owner, name, timed)
    try:
        yield
    finally:
        setattr(owner, name, original)


def _write_all(engine: Engine, business_id: int, batches: Iterator[dataset.Batch]) -> None:
    for batch in batches:
        resource = catalogue.get(batch.resource)
        parsed = validate.decode(batch.body, validate.batch_type(resource))
        checked = validate.validated(resource, parsed.upsert, parsed.delete)
        with write_transaction(engine) as conn:
            write.apply_changes(conn, business_id=business_id, batch=checked)


def _breakdown(url: str, seed: int) -> Breakdown:
    engine = make_engine(url)
    tenant = dataset.Tenant("Breakdown Gym", 2_000, BREAKDOWN_CHECKINS, seed + 3)
    found = Breakdown()
    spent = found.seconds
    try:
        with write_transaction(engine) as conn:
            business_id = tenants.create_business(conn, tenant.name).id
        _write_all(engine, business_id, dataset.reference_batches(tenant))
        checkins = catalogue.get("checkins")
        batch_type = validate.batch_type(checkins)
        with (
            timing(clock, "advance", spent, "clock"),
            timing(write, "_existing", spent, "existing rows"),
            timing(write, "_check_references", spent, "references"),
            timing(write, "columns_from_record", spent, "record columns"),
            timing(write, "render_fields", spent, "rendering"),
            timing(write.checksums, "id_bucket", spent, "summary totals"),
            timing(write.summary, "hash_columns", spent, "summary totals"),
            timing(bulk, "insert", spent, "row statements"),
            timing(bulk, "upsert", spent, "row statements"),
            timing(bulk, "restamp", spent, "row statements"),
            timing(bulk, "add_to_buckets", spent, "summary totals"),
        ):
            for batch in dataset.checkin_batches((tenant,)):
                started = time.perf_counter()
                parsed = validate.decode(batch.body, batch_type)
                decoded = time.perf_counter()
                checked = validate.validated(checkins, parsed.upsert, parsed.delete)
                ruled = time.perf_counter()
                with write_transaction(engine) as conn:
                    write.apply_changes(conn, business_id=business_id, batch=checked)
                    applied = time.perf_counter()
                done = time.perf_counter()
                spent["decode"] += decoded - started
                spent["rules"] += ruled - decoded
                spent["commit"] += done - applied
                spent["other"] += applied - ruled
                found.records += batch.records
        timed_inside = sum(
            spent[s] for s in STEPS if s not in ("decode", "rules", "commit", "other")
        )
        spent["other"] -= timed_inside
        with read_connection(engine) as conn:
            stored = conn.execute(
                text("SELECT count(*) FROM checkins WHERE business_id = :b"), {"b": business_id}
            ).scalar()
        assert stored == found.records, (stored, found.records)
    finally:
        engine.dispose()
    return found


def bulk_load(backend: str, url: str, business_id: int) -> Baseline:
    """The database's own bulk load of every one of the business's check-ins as stored.

    All of them, not a sample: SQLite's cost per row grows with the table (an index in
    random order, such as the user's, dirties more pages each commit), so a sample of
    200,000 loaded at 67,000/s where the same million load at 48,000/s here.
    """
    if backend == "postgresql":
        return _postgres_baseline(url, business_id)
    return _sqlite_baseline(url, business_id)


def measure(backend: str, url: str, business_id: int, seed: int) -> IngestParts:
    """The bulk-load baseline of the measured business's rows, then the in-process breakdown."""
    return IngestParts(bulk_load(backend, url, business_id), _breakdown(url, seed))
