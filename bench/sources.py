"""The source benchmark: a POS database of a million visits, read into clubfeed by a mapping file.

For each source (MariaDB, PostgreSQL) and each store (PostgreSQL, SQLite):
- **Backfill.** The runner's backfill of every resource, in this process, timed from
  the first read to the last write (its one wait for open source transactions is shown
  apart). Its rate is put over the store's own bulk load of the same check-ins as
  stored, in the same run (`ingest_parts.bulk_load`).
- **Follow.** `clubfeed source run` in its own process, as a vendor runs it, with the
  mapping's defaults (1 s poll, 1 s clock margin). The POS app commits a new visit 200
  times a second; a reader polls clubfeed's change feed (`list_page`, the range query
  an integrator runs, `modified_since` its last `consistent_until`) every 20 ms. The lag
  is from a visit's commit returning to the poll that first finds it.
- **Reconcile.** After drift the source made behind clubfeed's back (visits hard-deleted,
  visits changed without touching `updated_at`), one reconcile pass over the visits,
  in this process; it must repair and delete exactly those.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from rich.console import Console
from sqlalchemy import Engine, text

from bench import databases, ingest_parts
from bench.client import BenchError
from bench.servers import CLUBFEED
from bench.source_data import CLUBS, MAPPING, Sizes, SourceDatabase, zone_of
from clubfeed import catalogue
from clubfeed.feed import clock
from clubfeed.feed.cursor import CursorSigner
from clubfeed.feed.queries import ListQuery, list_page
from clubfeed.sources import parallel
from clubfeed.sources.database import SourceDB, connect
from clubfeed.sources.mapping import load
from clubfeed.sources.runner import Runner
from clubfeed.storage.engine import make_engine, read_connection

STORES = ("postgresql", "sqlite")
COMMITS_PER_S = 200
FOLLOW_S = 20.0
READ_EVERY_S = 0.02
DRIFT = 100
"""Visits hard-deleted, and visits changed without a new stamp, before the reconcile."""


BACKFILL_STEPS = ("source read", "pages to workers", "waiting for workers", "other")
"""Where the runner's time goes in a backfill by worker processes (the mapping's default of
two): reading pages from the source (the driver's parsing included), handing pages to
idle workers (pickling them), waiting for a worker to finish a page (each converts,
renders and writes its pages through the ingest path), and the rest (cursor saves)."""


@dataclass(frozen=True)
class Backfill:
    records: int
    seconds: float
    wait_s: float
    baseline: ingest_parts.Baseline
    steps_s: dict[str, float]

    def us_per_record(self, step: str) -> float:
        return self.steps_s[step] / self.records * 1e6

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds

    @property
    def ratio(self) -> float:
        return self.records_per_s / self.baseline.records_per_s


@dataclass(frozen=True)
class Follow:
    commits: int
    seconds: float
    lags_s: list[float]

    @property
    def commits_per_s(self) -> float:
        return self.commits / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.lags_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Reconcile:
    rows: int
    seconds: float
    repaired: int
    deleted: int


@dataclass(frozen=True)
class SourceOutcome:
    source: str
    store: str
    sizes: Sizes
    backfill: Backfill
    follow: Follow
    reconcile: Reconcile


def run(
    visits: int, seed: int, console: Console, workdir: Path, sources: tuple[str, ...]
) -> list[SourceOutcome]:
    """Every source × store, each source loaded once and read into a fresh store per store."""
    sizes = Sizes(visits)
    outcomes = []
    for kind in sources:
        console.print(f"[bold]source {kind}[/]: loading {sizes.records:,} rows")
        source = SourceDatabase(kind)
        try:
            source.load(sizes, seed)
            # The second store reads the source as the first left it: a few thousand
            # visits more, a few hundred fewer or changed. Each figure counts what it read.
            for store in STORES:
                outcomes.append(_one(source, store, sizes, seed, console, workdir))
        finally:
            source.drop()
    return outcomes


def _one(
    source: SourceDatabase, store: str, sizes: Sizes, seed: int, console: Console, workdir: Path
) -> SourceOutcome:
    with databases.fresh(store, workdir) as url:
        databases.cli(url, "db", "upgrade")
        business = databases.create_business(url, f"Source bench {source.kind}")
        file = workdir / f"pos-{source.kind}-{store}.yaml"
        name = f"bench-{source.kind}-{store}"
        file.write_text(MAPPING.format(name=name, url=source.url, business_id=business.business_id))
        console.print(f"{source.kind} → {store}: backfill of {sizes.records:,} records")
        backfill = _backfill(file, url, store, business.business_id)
        console.print(
            f"{source.kind} → {store}: follow at {COMMITS_PER_S} commits/s for {FOLLOW_S:.0f} s"
        )
        follow = _follow(source, file, url, sizes, business.business_id, seed)
        console.print(f"{source.kind} → {store}: drift, then one reconcile pass")
        reconcile = _reconcile(source, file, url, business.business_id, f"{seed}-{store}")
    return SourceOutcome(source.kind, store, sizes, backfill, follow, reconcile)


def _backfill(file: Path, url: str, store: str, business_id: int) -> Backfill:
    mapping = load(file)
    engine = make_engine(url)
    source = connect(mapping.source.url)
    try:
        runner = Runner(mapping, engine, source)
        started = time.perf_counter()
        runner.start_backfills(runner.resources)
        waited = time.perf_counter()
        spent = dict.fromkeys(BACKFILL_STEPS, 0.0)
        with (
            ingest_parts.timing(SourceDB, "read_by_key", spent, "source read"),
            ingest_parts.timing(parallel.Workers, "send", spent, "pages to workers"),
            ingest_parts.timing(parallel.Workers, "collect", spent, "waiting for workers"),
        ):
            for item in runner.resources:
                runner.backfill(item)
        done = time.perf_counter()
        records = sum(_live(engine, business_id, r) for r in ("locations", "users", "checkins"))
    finally:
        source.close()
        engine.dispose()
    spent["other"] = (done - waited) - sum(spent.values())
    baseline = ingest_parts.bulk_load(store, url, business_id)
    return Backfill(records, done - waited, waited - started, baseline, spent)


def _live(engine: Engine, business_id: int, resource: str) -> int:
    table = catalogue.get(resource).table
    with read_connection(engine) as conn:
        found = conn.execute(
            text(f"SELECT count(*) FROM {table} WHERE business_id = :b AND deleted_at IS NULL"),
            {"b": business_id},
        ).scalar()
    return int(found or 0)


class _Reader:
    """An integrator's poller, in this process: range queries of the change feed from the
    last `consistent_until`, noting when each record id first appears."""

    def __init__(self, url: str, business_id: int) -> None:
        self.engine = make_engine(url, pool_size=1)
        self.business_id = business_id
        with read_connection(self.engine) as conn:
            self.since_us = clock.read(conn, business_id).consistent_until_us
        self.seen: dict[str, float] = {}
        self.signer = CursorSigner(b"source benchmark reader key....")
        self.checkins = catalogue.get("checkins")

    def poll(self) -> None:
        cursor: str | None = None
        query: ListQuery | None = ListQuery(since_us=self.since_us)
        while True:
            with read_connection(self.engine) as conn:
                page = list_page(
                    conn,
                    self.signer,
                    business_id=self.business_id,
                    resource=self.checkins,
                    query=query,
                    limit=10_000,
                    cursor=cursor,
                )
            now = time.monotonic()
            if page.count:
                for record in msgspec.json.decode(f"[{page.items}]"):
                    self.seen.setdefault(record["id"], now)
            if page.next_cursor is None:
                self.since_us = page.consistent_until_us
                return
            cursor, query = page.next_cursor, None

    def close(self) -> None:
        self.engine.dispose()


class _Pos:
    """The POS app: one new visit per commit, at a steady rate, each commit's end noted."""

    def __init__(self, source: SourceDatabase, sizes: Sizes, seed: int) -> None:
        self.source = source
        self.rng = random.Random(seed + 7)
        self.members = sizes.members
        with source.connect() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT max(visit_id) FROM visits")
            self.next_id = int(cursor.fetchone()[0]) + 1
        self.committed: dict[str, float] = {}

    def commit_one(self, conn: Any, cursor: Any) -> None:
        club = self.rng.randrange(1, CLUBS + 1)
        moment = datetime.now(UTC)
        local = moment.astimezone(ZoneInfo(zone_of(club))).replace(tzinfo=None)
        visit = self.next_id
        self.next_id += 1
        cursor.execute(
            "INSERT INTO visits VALUES (%s, %s, %s, %s, %s)",
            (visit, self.rng.randrange(1, self.members + 1), club, local,
             moment.replace(tzinfo=None)),
        )  # fmt: skip
        conn.commit()
        self.committed[str(visit)] = time.monotonic()

    def run(self, rate: float, seconds: float) -> float:
        """Commit `rate` a second for `seconds`; the seconds it took."""
        with self.source.connect() as conn, conn.cursor() as cursor:
            started = time.monotonic()
            total = int(rate * seconds)
            for i in range(total):
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.commit_one(conn, cursor)
            return time.monotonic() - started


def _follow(
    source: SourceDatabase, file: Path, url: str, sizes: Sizes, business_id: int, seed: int
) -> Follow:
    log = file.with_suffix(".log")
    with log.open("wb") as out:
        runner = subprocess.Popen(
            [str(CLUBFEED), "--database-url", url, "source", "run", str(file)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    reader = _Reader(url, business_id)
    pos = _Pos(source, sizes, seed)
    stop = threading.Event()
    try:
        # Warm-up: the runner is following once a first visit reaches the feed.
        with source.connect() as conn, conn.cursor() as cursor:
            pos.commit_one(conn, cursor)
        _until(lambda: set(pos.committed) <= set(reader.seen), reader, runner, log, 120)
        pos.committed.clear()
        polling = threading.Thread(target=_keep_reading, args=(reader, stop), daemon=True)
        polling.start()
        seconds = pos.run(COMMITS_PER_S, FOLLOW_S)
        deadline = time.monotonic() + 60
        while not set(pos.committed) <= set(reader.seen) and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        polling.join()
        missing = set(pos.committed) - set(reader.seen)
        if missing:
            raise BenchError(
                f"{len(missing)} committed visits never reached the feed in 60 s; see {log}"
            )
        lags = [reader.seen[v] - at for v, at in pos.committed.items()]
    finally:
        stop.set()
        reader.close()
        runner.send_signal(signal.SIGTERM)
        try:
            runner.wait(60)
        except subprocess.TimeoutExpired:
            runner.kill()
    return Follow(len(pos.committed), seconds, lags)


def _keep_reading(reader: _Reader, stop: threading.Event) -> None:
    while not stop.is_set():
        reader.poll()
        stop.wait(READ_EVERY_S)


def _until(
    done: Callable[[], bool],
    reader: _Reader,
    runner: subprocess.Popen[bytes],
    log: Path,
    timeout_s: float,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if runner.poll() is not None:
            raise BenchError(f"clubfeed source run exited:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise BenchError(f"clubfeed source run was not following after {timeout_s:.0f} s")
        reader.poll()
        time.sleep(READ_EVERY_S)


def _reconcile(
    source: SourceDatabase, file: Path, url: str, business_id: int, seed: str
) -> Reconcile:
    rng = random.Random(seed)
    with source.connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT max(visit_id) FROM visits")
        highest = int(cursor.fetchone()[0])
    chosen = rng.sample(range(1, highest + 1), 4 * DRIFT)
    # Hard deletes, and changes that leave updated_at alone: only a reconcile finds them.
    deleted = sum(
        source.execute("DELETE FROM visits WHERE visit_id = %s", (v,)) for v in chosen[:DRIFT]
    )
    changed = 0
    for v in chosen[DRIFT:]:
        if changed == DRIFT:
            break
        club = rng.randrange(1, CLUBS + 1)
        changed += source.execute(
            "UPDATE visits SET club_id = %s WHERE visit_id = %s AND club_id <> %s", (club, v, club)
        )
    mapping = load(file)
    engine = make_engine(url)
    reader = connect(mapping.source.url)
    try:
        runner = Runner(mapping, engine, reader)
        item = next(r for r in runner.resources if r.mapping.resource.name == "checkins")
        started = time.perf_counter()
        while not runner.reconcile_step(item):
            pass
        seconds = time.perf_counter() - started
        with read_connection(engine) as conn:
            row = conn.execute(
                text(
                    "SELECT reconcile_repaired, reconcile_deleted FROM source_cursors "
                    "WHERE mapping = :m AND resource = 'checkins'"
                ),
                {"m": mapping.name},
            ).one()
        live = _live(engine, business_id, "checkins")
    finally:
        reader.close()
        engine.dispose()
    rows = source.count("visits")
    if (row[0], row[1]) != (changed, deleted) or live != rows:
        raise BenchError(
            f"the reconcile repaired {row[0]} and deleted {row[1]} (the source changed "
            f"{changed} and deleted {deleted}); clubfeed has {live:,} visits, the source {rows:,}"
        )
    return Reconcile(rows, seconds, row[0], row[1])
