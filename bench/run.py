"""`python -m bench.run`: the feed's performance contract, measured on SQLite and PostgreSQL.

The feed suite: each backend gets a fresh database loaded through the HTTP ingest
API; then a 10,000-record page is timed at the start and deep in the table against
the database's own JSON and a typical FastAPI + Pydantic + ORM app, and complete
transfers, concurrent readers and server memory are measured.
The sources suite: a POS database on MariaDB and on PostgreSQL read into each store
with a mapping file: backfill, follow lag and a reconcile pass (bench/sources.py).
Exits 1 when a target is missed, so it can guard the list path; results are written
either way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from bench import report, scenario, small_report, source_data, source_report, sources
from bench.client import BenchError
from bench.databases import BACKENDS
from bench.measure import LIMIT

RESULTS = Path(__file__).resolve().parent / "results"
SUITES = ("feed", "sources")


def _backends(value: str) -> list[str]:
    chosen = [b.strip() for b in value.split(",") if b.strip()]
    unknown = [b for b in chosen if b not in BACKENDS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(BACKENDS)}; got {value!r}")
    return chosen


def _rows(value: str) -> int:
    rows = int(value.replace("_", "").replace(",", ""))
    if rows < 2 * LIMIT:
        raise argparse.ArgumentTypeError(f"--rows must be at least {2 * LIMIT:,}")
    return rows


def _choices(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(value: str) -> tuple[str, ...]:
        chosen = tuple(v.strip() for v in value.split(",") if v.strip())
        if not chosen or any(v not in allowed for v in chosen):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}; got {value!r}")
        return chosen

    return parse


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--rows",
        type=_rows,
        default=1_000_000,
        help="check-ins of the measured business, and visits of the source database",
    )
    parser.add_argument(
        "--backends", type=_backends, default=list(BACKENDS), help="sqlite,postgresql"
    )
    parser.add_argument("--runs", type=int, default=20, help="timed rounds of the page figures")
    parser.add_argument(
        "--small-rounds", type=int, default=5, help="interleaved rounds of the small requests"
    )
    parser.add_argument(
        "--small-seconds", type=int, default=3, help="length of each small-request wrk run"
    )
    parser.add_argument("--seed", type=int, default=20_260_314, help="seed of the data set")
    parser.add_argument(
        "--suites", type=_choices(SUITES), default=SUITES, help="feed,sources (default: both)"
    )
    parser.add_argument(
        "--sources",
        type=_choices(source_data.SOURCES),
        default=source_data.SOURCES,
        help="source databases of the sources suite: mariadb,postgresql",
    )
    return parser.parse_args(argv)


def machine(load_before: float) -> str:
    """What the figures were measured on, and how busy it was; they mean little without it."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return (
        f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
        "server, client and database on the same machine; load average "
        f"{load_before:.1f} before the run, {os.getloadavg()[0]:.1f} after"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    console = Console()
    command = "python -m bench.run " + shlex.join(sys.argv[1:] if argv is None else argv)
    options = scenario.Options(
        rows=args.rows,
        runs=args.runs,
        seed=args.seed,
        small_rounds=args.small_rounds,
        small_seconds=args.small_seconds,
    )
    outcomes = []
    source_outcomes: list[sources.SourceOutcome] = []
    started, load_before = time.monotonic(), os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="clubfeed-bench-") as tmp:
            if "feed" in args.suites:
                for backend in args.backends:
                    outcome = scenario.run(backend, options, console, Path(tmp))
                    report.print_outcome(console, outcome)
                    outcomes.append(outcome)
            if "sources" in args.suites:
                source_outcomes = sources.run(
                    args.rows, args.seed, console, Path(tmp), args.sources
                )
                for found in source_outcomes:
                    source_report.print_outcome(console, found)
    except BenchError as exc:
        console.print(f"[red]benchmark failed:[/] {exc}")
        return 1
    where = machine(load_before)
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "command": command.strip(),
        "machine": where,
        "seconds": time.monotonic() - started,
        "backends": [report.as_json(o) for o in outcomes],
        "sources": [source_report.as_json(o) for o in source_outcomes],
        "notes": [*report.NOTES, *small_report.NOTES, *source_report.NOTES],
    }
    (RESULTS / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
    text = report.markdown(outcomes, command.strip(), where) if outcomes else ""
    if source_outcomes:
        lines = [f"Measured with `{command.strip()}` on {where}.", ""] if not outcomes else []
        lines += ["Sources:", "", *source_report.markdown(source_outcomes)]
        text += "\n" + "\n".join(lines) + "\n"
    (RESULTS / "latest.md").write_text(text)
    console.print(f"{where}\nwritten: {RESULTS / 'latest.md'} and {RESULTS / 'latest.json'}")
    missed = [t.name for o in outcomes for t in report.all_targets(o) if not t.met]
    missed += [t.name for o in source_outcomes for t in source_report.targets(o) if not t.met]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
