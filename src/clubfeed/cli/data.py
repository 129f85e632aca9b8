"""`clubfeed import` and `clubfeed demo`: load records from a file, or the demo gym chain."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click
from rich.console import Console

from clubfeed.cli.context import Context, emit, err, json_option, pass_context
from clubfeed.errors import ClubfeedError
from clubfeed.ingest.validate import MAX_BATCH


@click.command("import")
@click.argument("resource")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--business", "business_id", required=True, type=int, help="The business to write to."
)
@click.option(
    "--batch-size",
    default=MAX_BATCH,
    show_default=True,
    type=click.IntRange(1, MAX_BATCH),
    help="Records per transaction.",
)
@json_option(
    "Print one line of JSON instead of the progress and table: the counts, and the "
    'failing lines as [{"line", "problem"}].'
)
@pass_context
def import_(
    ctx: Context, resource: str, file: Path, business_id: int, batch_size: int, as_json: bool
) -> None:
    """Load an NDJSON file of RESOURCE records (one JSON object a line).

    Each batch is one transaction: all of its lines are written, or none. A line
    {"id": ..., "deleted": true} deletes that record. Failing lines are reported
    by number and the command exits 1.
    """
    from clubfeed import catalogue
    from clubfeed.ingest.ndjson import import_file

    if resource not in catalogue.BY_NAME:
        raise click.ClickException(
            f"Unknown resource {resource!r}; one of: {', '.join(catalogue.BY_NAME)}."
        )
    try:
        report = import_file(
            ctx.engine,
            catalogue.get(resource),
            file,
            business_id=business_id,
            batch_size=batch_size,
            console=Console(stderr=True, quiet=True) if as_json else err(),
        )
    except ClubfeedError as exc:
        raise click.ClickException(exc.detail) from exc
    if as_json:
        counts = dataclasses.asdict(report)
        counts["failures"] = [{"line": n, "problem": p} for n, p in report.failures]
        emit(True, {"resource": resource, "file": str(file), **counts}, [])
    if report.failed_lines:
        sys.exit(1)


@click.command()
@click.option(
    "--port", default=8000, show_default=True, type=int, help="Port the printed examples call."
)
@json_option("Print the new credentials as one line of JSON (and no progress or examples).")
@pass_context
def demo(ctx: Context, port: int, as_json: bool) -> None:
    """Load the seeded demo gym chain (once) and print fresh credentials to read and write it."""
    from clubfeed.auth import passwords
    from clubfeed.demo import ensure_demo

    made = ensure_demo(
        ctx.engine,
        console=Console(stderr=True, quiet=True) if as_json else err(),
        hasher=passwords.hasher(ctx.settings),
        base_url=f"http://127.0.0.1:{port}",
    )
    if as_json:
        emit(True, dataclasses.asdict(made), [])
