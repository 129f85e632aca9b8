"""Figures, ratios and targets of each backend: as rich tables, as JSON, and as README markdown."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from bench import ingest_parts, small_report
from bench.scenario import CODINGS, READERS, TRANSFERS, Outcome
from bench.targets import Target

NOTES = (
    "Pages are 10,000 check-ins; p50/p95 over interleaved runs after warm-up, measured "
    "from request sent to last byte read (DB JSON: query sent to text fetched, in-process).",
    "The typical app pages by keyset on change_seq like clubfeed; a typical API would use "
    "OFFSET, which would make its deep pages slower still. It is given keyset so that the "
    "comparison is about per-record object costs, not paging algorithms.",
    "DB JSON builds the same records field for field (json_agg / json_group_array), local "
    "offsets included: PostgreSQL with AT TIME ZONE, SQLite (no zone database) through a "
    "small table of offset spans. Every contestant's pages were checked to hold the same records. "
    "The reference row leaves times as integer µs: the cost of the JSON without time formatting.",
    "Ingest: check-in batches of 10,000 sent one after another through POST "
    "/v1/checkins/batch into a fresh database, the clock running only while a request is "
    "in flight. Reads follow a VACUUM ANALYZE on PostgreSQL (what autovacuum soon does).",
    "Compression: the first page asked with Accept-Encoding zstd, br or gzip, timed like the "
    "uncompressed one in the same interleaved rounds (request sent to last byte read).",
    "Summaries: feed.summary.summarize of the measured business's check-ins (REPEATABLE "
    "READ on PostgreSQL), against SELECT count(*) of the same rows, in the benchmark's "
    "process on pooled connections, interleaved.",
    "clubfeed pull: the reference poller's own function (client.pull.pull_once) copying the "
    "measured business's check-ins into a fresh SQLite file, against a bare httpx loop with "
    'compression on that follows each page\'s Link: rel="next" and throws the bodies away '
    "(bench/pull.py); interleaved rounds, medians.",
    "Bulk load: every one of the measured business's check-ins exactly as stored, loaded "
    "in one transaction into an empty table of the same shape and indexes (PostgreSQL: "
    "COPY in binary from psycopg; SQLite: one executemany). Ingest ÷ bulk load compares "
    "the HTTP ingest rate above with it. The steps: a fresh business's 50,000 check-ins "
    "written in 10,000-record batches in the benchmark's process through the batch "
    "endpoint's own functions (bench/ingest_parts.py), each step timed.",
)


def _p50(outcome: Outcome, name: str) -> float:
    return outcome.reads.pages[name].p50


def ratios(outcome: Outcome) -> dict[str, float]:
    return {
        "clubfeed/db_json first": _p50(outcome, "clubfeed first") / _p50(outcome, "db_json first"),
        "clubfeed/db_json deep": _p50(outcome, "clubfeed deep") / _p50(outcome, "db_json deep"),
        "typical/clubfeed first": _p50(outcome, "typical first") / _p50(outcome, "clubfeed first"),
        "typical/clubfeed deep": _p50(outcome, "typical deep") / _p50(outcome, "clubfeed deep"),
        "deep/first clubfeed": _p50(outcome, "clubfeed deep") / _p50(outcome, "clubfeed first"),
        **{
            f"{coding}/identity time": _p50(outcome, f"clubfeed first {coding}")
            / _p50(outcome, "clubfeed first")
            for coding in CODINGS
        },
        **{
            f"identity/{coding} bytes": outcome.reads.page_bytes / size
            for coding, size in outcome.reads.compressed_bytes.items()
        },
        "summary/count": outcome.reads.summaries["summary"].p50
        / outcome.reads.summaries["count(*)"].p50,
        "ingest/bulk load": outcome.ingest.records_per_s
        / outcome.ingest_parts.baseline.records_per_s,
        "pull/bare loop": outcome.pull.ratio,
    }


def targets(outcome: Outcome) -> list[Target]:
    r = ratios(outcome)
    found = [
        Target("first page ÷ DB JSON (p50)", r["clubfeed/db_json first"], 1.3, True, "×"),
        Target("deep page ÷ DB JSON (p50)", r["clubfeed/db_json deep"], 1.3, True, "×"),
        Target("typical ÷ clubfeed, first page (p50)", r["typical/clubfeed first"], 6, False, "×"),
        Target("typical ÷ clubfeed, deep page (p50)", r["typical/clubfeed deep"], 6, False, "×"),
        Target("deep page ÷ first page (p50)", r["deep/first clubfeed"], 1.1, True, "×"),
        Target("page ÷ zstd page (bytes)", r["identity/zstd bytes"], 8, False, "×"),
        Target("page ÷ gzip page (bytes)", r["identity/gzip bytes"], 8, False, "×"),
        Target("zstd page ÷ page (p50 time)", r["zstd/identity time"], 1.3, True, "×"),
        Target("gzip page ÷ page (p50 time)", r["gzip/identity time"], 2, True, "×"),
        Target("summary ÷ SELECT count(*) (p50)", r["summary/count"], 3, True, "×"),
    ]
    if outcome.backend == "postgresql":
        found.append(
            Target(
                "complete transfer",
                outcome.reads.transfer_records_per_s,
                250_000,
                False,
                "records/s",
            )
        )
    found.append(Target("ingest", outcome.ingest.records_per_s, 20_000, False, "records/s"))
    found.append(
        Target("ingest ÷ bulk load of the same rows", r["ingest/bulk load"], 0.2, False, "×")
    )
    found.append(Target("clubfeed pull ÷ bare httpx loop", r["pull/bare loop"], 0.5, False, "×"))
    found.append(
        Target("pull --follow: a change in the copy (p50)", outcome.pull.follow_p50_s, 2, True, "s")
    )
    return found


def _spread(outcome: Outcome, name: str) -> str:
    spread = outcome.reads.pages[name]
    return f"{spread.p50:,.1f} / {spread.p95:,.1f} ms"


def figures(outcome: Outcome) -> list[tuple[str, str]]:
    """(figure, value) rows, in the order they are shown."""
    reads, r = outcome.reads, ratios(outcome)
    concurrent = reads.concurrent
    rows = []
    for where, label in (("first", "first page"), ("deep", "deep page")):
        rows += [
            (f"{label}: clubfeed, p50 / p95", _spread(outcome, f"clubfeed {where}")),
            (f"{label}: DB JSON, p50 / p95", _spread(outcome, f"db_json {where}")),
            (f"{label}: typical, p50 / p95", _spread(outcome, f"typical {where}")),
            (
                f"{label}: DB JSON, times as µs (reference), p50 / p95",
                _spread(outcome, f"db_raw {where}"),
            ),
            (f"{label}: clubfeed ÷ DB JSON", f"{r[f'clubfeed/db_json {where}']:.2f}×"),
            (f"{label}: typical ÷ clubfeed", f"{r[f'typical/clubfeed {where}']:.1f}×"),
        ]
    rows += [
        ("deep page ÷ first page (clubfeed)", f"{r['deep/first clubfeed']:.2f}×"),
        (
            f"complete transfer of {outcome.rows:,} (median of {TRANSFERS})",
            f"{reads.transfer_records_per_s:,.0f} records/s",
        ),
        (
            f"{READERS} concurrent readers: aggregate",
            f"{concurrent.records_per_s:,.0f} records/s",
        ),
        (
            f"{READERS} concurrent readers: p50 per request",
            f"{statistics.median(concurrent.request_ms):,.1f} ms",
        ),
        (
            "ingest, 10,000-record batches",
            f"{outcome.ingest.records_per_s:,.0f} records/s "
            f"(p50 {outcome.ingest.batch_p50_ms:,.0f} ms/batch)",
        ),
        (
            "ingest p50 per batch: first → last tenth of the load",
            f"{outcome.ingest.tenth_p50_ms(last=False):,.0f} → "
            f"{outcome.ingest.tenth_p50_ms(last=True):,.0f} ms",
        ),
        ("server RSS after reads: now / peak", _mib(reads.serve_rss_mib)),
        ("server RSS while ingesting: peak", f"{outcome.ingest_rss_mib[1]:,.0f} MiB"),
        ("typical app RSS: now / peak", _mib(reads.typical_rss_mib)),
        ("page size", f"{reads.page_bytes / 1_000_000:,.2f} MB"),
        *_ingest_rows(outcome),
    ]
    for name, spread in reads.summaries.items():
        rows.append(
            (f"{name} of {outcome.rows:,}, p50 / p95", f"{spread.p50:,.1f} / {spread.p95:,.1f} ms")
        )
    for coding in CODINGS:
        rows.append(
            (
                f"first page in {coding}: bytes (÷), p50 / p95 (÷ uncompressed p50)",
                f"{reads.compressed_bytes[coding]:,} ({r[f'identity/{coding} bytes']:.1f}×), "
                f"{_spread(outcome, f'clubfeed first {coding}')} "
                f"({r[f'{coding}/identity time']:.2f}×)",
            )
        )
    pulled = outcome.pull
    rows += [
        (
            f"clubfeed pull of {pulled.records:,} into SQLite (median of {len(pulled.pull_s)})",
            f"{pulled.pull_records_per_s:,.0f} records/s",
        ),
        (
            "bare httpx loop, compressed, bodies thrown away",
            f"{pulled.baseline_records_per_s:,.0f} records/s",
        ),
        ("clubfeed pull ÷ bare loop", f"{r['pull/bare loop']:.2f}×"),
        (
            f"pull --follow (interval 1 s): write to copy, p50 / p99 of {len(pulled.follow_s)}",
            f"{pulled.follow_p50_s:.2f} / {pulled.follow_p99_s:.2f} s",
        ),
    ]
    return rows


def _ingest_rows(outcome: Outcome) -> list[tuple[str, str]]:
    parts = outcome.ingest_parts
    steps = parts.breakdown
    return [
        (
            "bulk load of the same rows (COPY; SQLite: one executemany)",
            f"{parts.baseline.records_per_s:,.0f} records/s ({parts.baseline.rows:,} rows)",
        ),
        ("ingest ÷ bulk load", f"{ratios(outcome)['ingest/bulk load']:.2f}×"),
        (
            "ingest in-process, µs per record (over HTTP: difference)",
            f"{steps.total_us_per_record:,.1f} "
            f"({1e6 / outcome.ingest.records_per_s - steps.total_us_per_record:+,.1f})",
        ),
        (
            "ingest in-process, µs per record: " + " / ".join(ingest_parts.STEPS),
            " / ".join(f"{steps.us_per_record(s):.1f}" for s in ingest_parts.STEPS),
        ),
    ]


def _mib(pair: tuple[float, float]) -> str:
    return f"{pair[0]:,.0f} / {pair[1]:,.0f} MiB"


def all_targets(outcome: Outcome) -> list[Target]:
    """The page targets and the small-request ones: what `run` checks."""
    return targets(outcome) + small_report.targets(outcome.small)


def _mark(met: bool) -> str:
    return "[green]met[/]" if met else "[red]missed[/]"


def _print_tables(
    console: Console, title: str, rows: list[tuple[str, str]], checks: list[Target], where: str
) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    found = Table(title=f"targets on {where}", title_justify="left")
    for column in ("target", "measured", "goal", ""):
        found.add_column(column, justify="left" if column == "target" else "right")
    for target in checks:
        found.add_row(
            target.name, target.text(target.measured), target.goal_text, _mark(target.met)
        )
    console.print(found)


def print_outcome(console: Console, outcome: Outcome) -> None:
    title = f"{outcome.version} — {outcome.rows:,} check-ins"
    _print_tables(console, title, figures(outcome), targets(outcome), outcome.backend)
    _print_tables(
        console,
        f"{outcome.version} — small requests and the cost of each feature",
        small_report.figures(outcome.small),
        small_report.targets(outcome.small),
        f"{outcome.backend}, small requests",
    )


def as_json(outcome: Outcome) -> dict[str, object]:
    reads = outcome.reads
    return {
        "backend": outcome.backend,
        "version": outcome.version,
        "rows": outcome.rows,
        "pages_ms": {
            name: {"p50": s.p50, "p95": s.p95, "samples": s.samples_ms}
            for name, s in reads.pages.items()
        },
        "deep_page_after_records": reads.deep_after_records,
        "page_bytes": reads.page_bytes,
        "compressed_bytes": reads.compressed_bytes,
        "summaries_ms": {name: {"p50": s.p50, "p95": s.p95} for name, s in reads.summaries.items()},
        "ratios": ratios(outcome),
        "transfer_records_per_s": reads.transfer_records_per_s,
        "transfer_runs_records_per_s": [t.records_per_s for t in reads.transfers],
        "concurrent": {
            "readers": reads.concurrent.readers,
            "records_per_s": reads.concurrent.records_per_s,
            "request_p50_ms": statistics.median(reads.concurrent.request_ms),
        },
        "ingest": {
            "records": outcome.ingest.records,
            "records_per_s": outcome.ingest.records_per_s,
            "batch_p50_ms": outcome.ingest.batch_p50_ms,
            "batch_p50_ms_first_tenth": outcome.ingest.tenth_p50_ms(last=False),
            "batch_p50_ms_last_tenth": outcome.ingest.tenth_p50_ms(last=True),
        },
        "pull": {
            "records": outcome.pull.records,
            "pull_seconds": outcome.pull.pull_s,
            "bare_loop_seconds": outcome.pull.baseline_s,
            "pull_records_per_s": outcome.pull.pull_records_per_s,
            "bare_loop_records_per_s": outcome.pull.baseline_records_per_s,
            "follow_seconds": outcome.pull.follow_s,
        },
        "ingest_parts": {
            "bulk_load_rows": outcome.ingest_parts.baseline.rows,
            "bulk_load_records_per_s": outcome.ingest_parts.baseline.records_per_s,
            "in_process_records": outcome.ingest_parts.breakdown.records,
            "in_process_us_per_record": {
                s: outcome.ingest_parts.breakdown.us_per_record(s) for s in ingest_parts.STEPS
            },
        },
        "rss_mib": {
            "serve_now": reads.serve_rss_mib[0],
            "serve_peak": reads.serve_rss_mib[1],
            "ingest_peak": outcome.ingest_rss_mib[1],
            "typical_now": reads.typical_rss_mib[0],
            "typical_peak": reads.typical_rss_mib[1],
        },
        "small": small_report.as_json(outcome.small),
        "targets": [
            {"name": t.name, "measured": t.measured, "goal": t.goal, "met": t.met}
            for t in all_targets(outcome)
        ],
    }


def _markdown_tables(
    outcomes: list[Outcome],
    rows: Callable[[Outcome], list[tuple[str, str]]],
    checks: Callable[[Outcome], list[Target]],
) -> list[str]:
    """Figures, then targets, one column per backend."""
    head = "| | " + " | ".join(o.version for o in outcomes) + " |"
    rule = "|---|" + "---:|" * len(outcomes)
    lines = [head, rule]
    names = [name for name, _ in rows(outcomes[0])]
    values = [dict(rows(o)) for o in outcomes]
    lines += [f"| {name} | " + " | ".join(v[name] for v in values) + " |" for name in names]
    lines += ["", "| target | " + " | ".join(o.backend for o in outcomes) + " |", rule]
    by_backend = [{t.name: t for t in checks(o)} for o in outcomes]
    longest = max(by_backend, key=len)
    for name in dict.fromkeys([*longest, *(n for b in by_backend for n in b)]):
        cells = []
        for found in by_backend:
            t = found.get(name)
            cells.append(
                "—"
                if t is None
                else f"{t.text(t.measured)} ({t.goal_text}) {'met' if t.met else '**missed**'}"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def markdown(outcomes: list[Outcome], command: str, machine: str) -> str:
    """Tables ready to paste into the README: pages, then small requests and feature costs."""
    lines = [f"Measured with `{command}` on {machine}.", ""]
    lines += _markdown_tables(outcomes, figures, targets)
    lines += [""] + [f"- {note}" for note in NOTES]
    lines += ["", "Small requests and the cost of each feature:", ""]
    lines += _markdown_tables(
        outcomes,
        lambda o: small_report.figures(o.small),
        lambda o: small_report.targets(o.small),
    )
    lines += [""] + [f"- {note}" for note in small_report.NOTES]
    return "\n".join(lines) + "\n"
