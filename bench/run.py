"""`python -m bench.run`: the feed's performance contract, measured on SQLite and PostgreSQL.

Each backend gets a fresh database loaded through the HTTP ingest API; then a
10,000-record page is timed at the start and deep in the table against the
database's own JSON and a typical FastAPI + Pydantic + ORM app, and complete
transfers, concurrent readers and server memory are measured. Exits 1 when a
target is missed, so it can guard the list path; results are written either way.
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
from pathlib import Path

from rich.console import Console

from bench import report, scenario, small_report
from bench.client import BenchError
from bench.databases import BACKENDS
from bench.measure import LIMIT

RESULTS = Path(__file__).resolve().parent / "results"


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


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--rows", type=_rows, default=1_000_000, help="check-ins of the measured business"
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
    started, load_before = time.monotonic(), os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="clubfeed-bench-") as tmp:
            for backend in args.backends:
                outcome = scenario.run(backend, options, console, Path(tmp))
                report.print_outcome(console, outcome)
                outcomes.append(outcome)
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
        "notes": [*report.NOTES, *small_report.NOTES],
    }
    (RESULTS / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / "latest.md").write_text(report.markdown(outcomes, command.strip(), where))
    console.print(f"{where}\nwritten: {RESULTS / 'latest.md'} and {RESULTS / 'latest.json'}")
    missed = [t.name for o in outcomes for t in report.all_targets(o) if not t.met]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
