"""`clubfeed source`: keep clubfeed in sync with the vendor's own database, from a mapping file."""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from clubfeed.cli.context import Context, emit, err, json_option, pass_context, utc
from clubfeed.timefmt import now_us

if TYPE_CHECKING:
    from clubfeed.sources.database import SourceDB
    from clubfeed.sources.mapping import MappingFile

_FILE = click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))


def _load(file: Path) -> MappingFile:
    from clubfeed.sources.mapping import MappingError, load

    try:
        return load(file)
    except MappingError as exc:
        raise click.ClickException(str(exc)) from exc


def _connect(mapping: MappingFile) -> SourceDB:
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from clubfeed.sources.database import connect, safe_url

    where = f"{mapping.path}: cannot use source.url {safe_url(mapping.source.url)}"
    try:
        return connect(mapping.source.url)
    except ArgumentError as exc:  # its message quotes the URL, password and all
        raise click.ClickException(f"{where}: it is not a SQLAlchemy URL") from exc
    except (ValueError, NoSuchModuleError, ImportError) as exc:
        raise click.ClickException(f"{where}: {exc}") from exc


@click.group()
def source() -> None:
    """Read the vendor's own database (PostgreSQL, MySQL/MariaDB, SQLite) into clubfeed.

    FILE is a YAML mapping file: the source URL, whose rows belong to which business,
    and one query per resource. See the README's "Sources" section.
    """


@source.command("check")
@_FILE
@json_option("Print the report as one line of JSON.")
def check(file: Path, as_json: bool) -> None:
    """Check FILE and the source: run each query on a few rows and show them mapped.

    Also says what the runner promises with this account and the settings it will use.
    Connects read-only and writes nothing. Exits 1 if a query cannot be used.
    """
    from clubfeed.sources.check import check as run_check
    from clubfeed.sources.check import settings_text, span
    from clubfeed.sources.database import safe_url

    mapping = _load(file)
    source_db = _connect(mapping)
    try:
        report = run_check(mapping, source_db)
    except SQLAlchemyError as exc:  # the source is unreachable, or refuses the account
        from clubfeed.sources.database import describe_failure

        raise click.ClickException(
            f"cannot read the source {safe_url(mapping.source.url)}: {describe_failure(exc)}"
        ) from exc
    finally:
        source_db.close()
    if as_json:
        data = dataclasses.asdict(report)
        data["ok"] = report.ok
        emit(True, data, [])
    else:
        console = Console()
        console.print(
            f"Mapping [bold]{escape(mapping.name)}[/bold] ({escape(str(file))}), source "
            f"{escape(safe_url(mapping.source.url))} ({report.dialect})"
        )
        console.print(escape(report.guarantee))
        console.print(escape(settings_text(mapping)))
        for result in report.resources:
            if not result.ok:
                console.print(f"[red]✗ {result.resource}[/red]: {escape(result.problem or '')}")
                continue
            extra = f"; into extra: {', '.join(result.extra)}" if result.extra else ""
            reconciled = f"; reconciled every {span(result.reconcile_s)}"
            console.print(
                f"[green]✓ {result.resource}[/green]: fields {', '.join(result.fields)}"
                f"{escape(extra + reconciled)}"
            )
            for record in result.sample:
                console.print("   " + escape(json.dumps(record, ensure_ascii=False, default=str)))
            for problem in result.row_problems:
                console.print(f"   [yellow]skipped[/yellow] {escape(problem)}")
    if not report.ok:
        sys.exit(1)


@source.command("run")
@_FILE
@click.option(
    "--once", is_flag=True, help="Backfill if needed, make one pass, and exit (for cron)."
)
@json_option("Print one JSON line per event (backfilled, reconciled, error) instead of progress.")
@pass_context
def run(ctx: Context, file: Path, once: bool, as_json: bool) -> None:
    """Backfill every resource of FILE, then follow the source's changes until stopped.

    State lives in clubfeed's database: a restart (even after kill -9) resumes where the
    last run stopped. One runner per mapping: a second one refuses to start.
    """
    from clubfeed.sources.lock import AlreadyRunning, hold
    from clubfeed.sources.runner import Runner
    from clubfeed.sources.writer import UnknownBusiness

    mapping = _load(file)
    source_db = _connect(mapping)
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }

    def event(data: dict[str, Any]) -> None:
        if as_json:
            click.echo(json.dumps({"mapping": mapping.name, **data}, ensure_ascii=False))

    try:
        with hold(ctx.engine, mapping.name):
            runner = Runner(
                mapping,
                ctx.engine,
                source_db,
                console=Console(stderr=True, quiet=True) if as_json else err(),
                on_event=event,
            )
            failed = runner.run(once=once, stop=stop)
    except (AlreadyRunning, UnknownBusiness) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        source_db.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if failed:
        raise click.ClickException(
            f"{', '.join(failed)} failed this pass (the other resources were written); "
            f"see `clubfeed source status {file}`"
        )


@source.command("status")
@_FILE
@json_option("Print the status as one line of JSON.")
@pass_context
def status(ctx: Context, file: Path, as_json: bool) -> None:
    """Per resource and business: records written, watermark, lag, last error and reconcile."""
    from clubfeed.sources import state
    from clubfeed.storage.engine import read_connection

    mapping = _load(file)
    with read_connection(ctx.engine) as conn:
        rows = state.report(conn, mapping.name)
    now = now_us()
    for row in rows:
        caught_up = row["caught_up_at_us"]
        row["lag_seconds"] = None if caught_up is None else round((now - caught_up) / 1e6, 3)
    if as_json:
        emit(True, {"mapping": mapping.name, "resources": rows}, [])
        return
    if not rows:
        click.echo(f"Mapping {mapping.name} has not run yet: `clubfeed source run {file}`.")
        return
    reading = Table(title=f"source {mapping.name}: reading")
    for column in ("resource", "watermark", "lag", "last reconcile", "problems", "last error"):
        reading.add_column(column)
    written = Table(title=f"source {mapping.name}: records written")
    for column in ("resource", "business", "created", "updated", "deleted", "unchanged"):
        written.add_column(column, justify="left" if column == "resource" else "right")
    for row in rows:
        lag = "—" if row["lag_seconds"] is None else f"{row['lag_seconds']:.1f} s"
        if row["phase"] == "backfill":
            lag = "backfilling"
        problems = ", ".join(f"{len(v)} {k}" for k, v in row["problems"].items()) or "none"
        watermark = str(row["watermark"])
        if row["guarantee"] == "fixed lag":
            watermark += " (fixed lag: open transactions unseen)"
        if row["held_since_us"] is not None:
            watermark += f" (held by a transaction open since {utc(row['held_since_us'])})"
        reading.add_row(
            row["resource"],
            escape(watermark),
            lag,
            utc(row["reconciled_at_us"]) or "never",
            problems,
            escape(row["last_error"] or ""),
        )
        for counts in row["businesses"]:
            written.add_row(
                row["resource"],
                str(counts["business_id"]),
                *(f"{counts[k]:,}" for k in ("created", "updated", "deleted", "unchanged")),
            )
    console = Console()
    console.print(reading)
    console.print(written)
