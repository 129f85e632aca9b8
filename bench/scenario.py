"""One backend's run: a fresh database, the load through HTTP, then every read figure."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from sqlalchemy import Connection, text

from bench import databases, dataset, ingest_parts, load, measure, pull, servers, small, verify
from bench.baselines import DatabaseJson, PostgresJson, SqliteJson
from bench.client import BenchError, Http
from clubfeed import catalogue
from clubfeed.feed import summary
from clubfeed.storage.engine import make_engine, read_connection

TRANSFERS = 3
READERS = 4
DEEP_FRACTION = 0.95
PATH = "/v1/checkins"
CODINGS = ("zstd", "br", "gzip")
"""Each timed on the first page as `clubfeed first <coding>`, beside the uncompressed one."""


@dataclass(frozen=True)
class Options:
    rows: int
    runs: int
    seed: int
    small_rounds: int
    small_seconds: int


@dataclass(frozen=True)
class Reads:
    """The read figures of one backend."""

    deep_after_records: int
    page_bytes: int
    # The first page's bytes on the wire in each coding.
    compressed_bytes: dict[str, int]
    # "summary", "summary 1024 buckets" and "count(*)" of the measured business, in-process.
    summaries: dict[str, measure.Spread]
    pages: dict[str, measure.Spread]
    transfers: list[measure.Transfer]
    concurrent: measure.Concurrent
    serve_rss_mib: tuple[float, float]
    typical_rss_mib: tuple[float, float]

    @property
    def transfer_records_per_s(self) -> float:
        return statistics.median(t.records_per_s for t in self.transfers)


@dataclass(frozen=True)
class Outcome:
    """Everything measured on one backend."""

    backend: str
    version: str
    rows: int
    ingest: load.IngestResult
    ingest_rss_mib: tuple[float, float]
    reads: Reads
    small: small.Small
    ingest_parts: ingest_parts.IngestParts
    pull: pull.PullResult


def _database_json(backend: str, url: str, business_id: int) -> DatabaseJson:
    if backend == "postgresql":
        return PostgresJson(url, business_id, measure.LIMIT)
    zones = {loc[0]: loc[-1] for loc in dataset.LOCATIONS}
    return SqliteJson(url, business_id, measure.LIMIT, zones)


def run(backend: str, options: Options, console: Console, workdir: Path) -> Outcome:
    with databases.fresh(backend, workdir) as url:
        console.print(f"[bold]{backend}[/]: migrating, creating tenants through the CLI")
        databases.cli(url, "db", "upgrade")
        tenants = dataset.tenants(options.rows, options.seed)
        credentials = {t.name: databases.create_business(url, t.name) for t in tenants}
        integrator = databases.cli(url, "integrator", "create", "Bench Loyalty", "--json")
        with servers.clubfeed(url, workdir, f"{backend}-ingest") as server:
            ingest = load.load(server.port, tenants, credentials, console)
            ingest_rss = server.memory_mib()
        console.print("settling the database (PostgreSQL: VACUUM ANALYZE; SQLite: checkpoint)")
        databases.settle(backend, url)
        measured = credentials[tenants[0].name]
        headers = {
            "X-Integrator-Key": integrator["key"],
            "Authorization": f"Bearer {measured.shared_secret}",
        }
        version = databases.server_version(backend, url)
        database_json = _database_json(backend, url, measured.business_id)
        try:
            with (
                servers.clubfeed(url, workdir, f"{backend}-read") as ours,
                servers.typical(url, workdir) as typical,
            ):
                reads = _reads(options, console, ours, typical, database_json, headers)
                console.print(
                    f"clubfeed pull into SQLite against a bare httpx loop, {pull.ROUNDS} "
                    f"interleaved rounds; then pull --follow, {pull.FOLLOW_CHANGES} changes"
                )
                pulled = pull.run(
                    ours.port,
                    integrator["key"],
                    measured.shared_secret,
                    measured.ingest_key,
                    workdir,
                    options.rows,
                )
            console.print("summaries against SELECT count(*), in this process")
            reads = dataclasses.replace(
                reads, summaries=_time_summaries(url, measured.business_id, options)
            )
        finally:
            database_json.close()
        # After the reads: its PUTs change the measured business, which they compare.
        smalls = small.run(
            url,
            workdir,
            headers,
            measured.ingest_key,
            console,
            rounds=options.small_rounds,
            seconds=options.small_seconds,
            seed=options.seed,
        )
        console.print("ingest against the database's own bulk load, and its steps, in this process")
        parts = ingest_parts.measure(backend, url, measured.business_id, options.seed)
    return Outcome(backend, version, options.rows, ingest, ingest_rss, reads, smalls, parts, pulled)


def _time_summaries(url: str, business_id: int, options: Options) -> dict[str, measure.Spread]:
    """clubfeed's summary (whole, and in 1,024 buckets) and a bare count(*) of the same rows,
    each on its own pooled connection and transaction, interleaved."""
    engine = make_engine(url)
    checkins = catalogue.get("checkins")

    def timed(work: Callable[[Connection], object], snapshot: bool) -> Callable[[], float]:
        def run() -> float:
            with read_connection(engine) as conn:
                if snapshot:
                    conn.execution_options(**summary.snapshot_options(conn))
                started = time.perf_counter()
                work(conn)
                return time.perf_counter() - started

        return run

    count_sql = text(f"SELECT count(*) FROM {checkins.table} WHERE business_id = :b")
    try:
        return measure.interleaved(
            {
                "summary": timed(
                    lambda c: summary.summarize(c, business_id=business_id, resource=checkins),
                    True,
                ),
                "summary 1024 buckets": timed(
                    lambda c: summary.summarize(
                        c, business_id=business_id, resource=checkins, buckets=1024
                    ),
                    True,
                ),
                "count(*)": timed(
                    lambda c: c.execute(count_sql, {"b": business_id}).scalar(), False
                ),
            },
            options.runs,
            options.seed,
        )
    finally:
        engine.dispose()


@dataclass(frozen=True)
class PageRequests:
    """The first page and the deep page, as each contestant asks for them."""

    first: str
    deep: str
    typical_first: str
    typical_deep: str
    hi: int
    deep_seq: int
    deep_after: int


def _page_requests(
    transfer: measure.Transfer, rows: int, database_json: DatabaseJson
) -> PageRequests:
    """The deep page starts ~95% into the table: clubfeed reuses a cursor from a transfer
    (cursors are stateless), the others start after the same record's change_seq."""
    deep_page = min(int(len(transfer.request_ms) * DEEP_FRACTION), rows // measure.LIMIT - 1)
    deep_after = deep_page * measure.LIMIT
    deep_seq = database_json.seq_after(deep_after)
    first = f"{PATH}?limit={measure.LIMIT}"
    typical_first = f"{PATH}?business_id={database_json.business_id}&limit={measure.LIMIT}"
    return PageRequests(
        first=first,
        deep=f"{first}&cursor={transfer.cursors[deep_page - 1]}",
        typical_first=typical_first,
        typical_deep=f"{typical_first}&cursor={deep_seq}",
        hi=database_json.clock_seq(),
        deep_seq=deep_seq,
        deep_after=deep_after,
    )


def _check_agreement(
    ours: Http,
    typical: Http,
    database_json: DatabaseJson,
    pages: PageRequests,
    headers: Mapping[str, str],
) -> int:
    """Refuse to time contestants that hand over different records; the page's size in bytes."""
    for where, ours_path, typical_path, after in (
        ("first", pages.first, pages.typical_first, 0),
        ("deep", pages.deep, pages.typical_deep, pages.deep_seq),
    ):
        body = ours.get(ours_path, headers)
        formatted = database_json.page(after, pages.hi)
        verify.same_as_database(f"{where} page vs DB JSON", body, formatted)
        verify.same_as_typical(f"{where} page vs typical", body, typical.get(typical_path, {}))
        raw = database_json.page(after, pages.hi, raw=True)
        verify.same_ids(f"{where} page vs DB JSON with raw times", body, raw)
    return len(body)


def _time_pages(
    ours: Http,
    typical: Http,
    database_json: DatabaseJson,
    pages: PageRequests,
    headers: Mapping[str, str],
    options: Options,
) -> dict[str, measure.Spread]:
    hi, deep_seq = pages.hi, pages.deep_seq

    def compressed(coding: str) -> Callable[[], float]:
        asked = {**headers, "Accept-Encoding": coding}
        return lambda: ours.timed_get(pages.first, asked)[0]

    return measure.interleaved(
        {
            "clubfeed first": lambda: ours.timed_get(pages.first, headers)[0],
            **{f"clubfeed first {coding}": compressed(coding) for coding in CODINGS},
            "clubfeed deep": lambda: ours.timed_get(pages.deep, headers)[0],
            "typical first": lambda: typical.timed_get(pages.typical_first, {})[0],
            "typical deep": lambda: typical.timed_get(pages.typical_deep, {})[0],
            "db_json first": lambda: database_json.timed_page(0, hi)[0],
            "db_json deep": lambda: database_json.timed_page(deep_seq, hi)[0],
            "db_raw first": lambda: database_json.timed_page(0, hi, raw=True)[0],
            "db_raw deep": lambda: database_json.timed_page(deep_seq, hi, raw=True)[0],
        },
        options.runs,
        options.seed,
    )


def _reads(
    options: Options,
    console: Console,
    ours: servers.Server,
    typical: servers.Server,
    database_json: DatabaseJson,
    headers: Mapping[str, str],
) -> Reads:
    console.print(f"{TRANSFERS} complete transfers through clubfeed's HTTP API")
    transfers = [measure.transfer(ours.port, headers, PATH) for _ in range(TRANSFERS)]
    for done in transfers:
        if done.records != options.rows:
            raise BenchError(f"a complete transfer returned {done.records:,} of {options.rows:,}")
    pages = _page_requests(transfers[0], options.rows, database_json)
    ours_http, typical_http = Http(ours.port), Http(typical.port)
    try:
        page_bytes = _check_agreement(ours_http, typical_http, database_json, pages, headers)
        console.print(
            f"pages agree record for record; timing {options.runs} interleaved rounds "
            f"(+{measure.WARMUP} warm-up) of first and deep pages"
        )
        compressed_bytes = {
            coding: len(ours_http.get(pages.first, {**headers, "Accept-Encoding": coding}))
            for coding in CODINGS
        }
        spreads = _time_pages(ours_http, typical_http, database_json, pages, headers, options)
    finally:
        ours_http.close()
        typical_http.close()
    console.print(f"{READERS} concurrent readers, each a complete transfer")
    concurrent = measure.concurrent_transfers(ours.port, headers, READERS)
    return Reads(
        deep_after_records=pages.deep_after,
        page_bytes=page_bytes,
        compressed_bytes=compressed_bytes,
        summaries={},
        pages=spreads,
        transfers=transfers,
        concurrent=concurrent,
        serve_rss_mib=ours.memory_mib(),
        typical_rss_mib=typical.memory_mib(),
    )
