"""`clubfeed pull`: mirror a business into a local database with the client, and keep it so.

The reference poller: each resource's first pull is a complete transfer (with a progress
bar), every later one the changes since its bookmark, applied with the bookmark in one
transaction (`mirror.py`). A 410 turns into a complete transfer that replaces the copy.
`--verify` compares the copy with the server's summaries; `--follow` keeps polling.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from types import FrameType
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clubfeed.client.clients import Client
from clubfeed.client.errors import ClientError, HistoryGone
from clubfeed.client.mirror import Mirror, Rows, database_errors, decode_rows
from clubfeed.client.options import reader_credentials
from clubfeed.client.pages import Bookmark, Verification
from clubfeed.client.records import RECORD_TYPES

_VERIFY_TRIES = 5


@dataclass
class Pulled:
    """One resource's pull: what it applied, and what the copy holds after it."""

    resource: str
    transfer: bool
    records: int
    tombstones: int
    copy: int | None  # records in the copy after it (None: a follow poll that changed nothing)
    bookmark: str | None
    verified: bool | None = None
    differing_buckets: list[int] | None = None
    unverified: bool = False  # --verify asked, but the server wrote between every try


def _counted(
    pages: Iterator[Rows | Bookmark], advance: Callable[[int], None]
) -> Iterator[Rows | Bookmark]:
    for page in pages:
        if isinstance(page, Rows):
            advance(len(page.upserts) + len(page.deletes))
        yield page


def pull_once(
    client: Client,
    mirror: Mirror,
    resource: str,
    progress: Progress | None = None,
    *,
    counted: bool = True,
) -> Pulled:
    """Apply the resource's changes since its bookmark (all of it, the first time);
    `counted=False` skips counting the copy when nothing changed."""
    bookmark = mirror.bookmark(resource)
    try:
        return _apply(client, mirror, resource, bookmark, progress, counted)
    except HistoryGone:
        return _apply(client, mirror, resource, None, progress, counted)


def _apply(
    client: Client,
    mirror: Mirror,
    resource: str,
    since: Any,
    progress: Progress | None,
    counted: bool,
) -> Pulled:
    transfer = since is None
    pages = client.pages(resource, since, partial(decode_rows, resource))
    if transfer and progress is not None:
        task = progress.add_task(resource, total=client.summary(resource).count)
        pages = _counted(pages, lambda n: progress.advance(task, n))
    records, tombstones, saved = mirror.apply(resource, pages, replace=transfer)
    # A follow poll that changed nothing is not reported: it costs no count(*).
    changed = transfer or records or tombstones
    return Pulled(
        resource,
        transfer,
        records,
        tombstones,
        mirror.count(resource) if changed or counted else None,
        saved.modified_since if saved else None,
    )


def verify(client: Client, mirror: Mirror, pulled: Pulled) -> Verification | None:
    """Compare the copy with the server at one point: the summary whose `consistent_until`
    is the copy's bookmark, pulling again while writes move it; None if it kept moving."""
    for _ in range(_VERIFY_TRIES):
        found = client.summary(pulled.resource, 1024)
        if found.consistent_until == pulled.bookmark:
            versions = mirror.versions(pulled.resource)
            return client.verify(pulled.resource, versions, 1024, summary=found)
        again = pull_once(client, mirror, pulled.resource)
        pulled.records += again.records
        pulled.tombstones += again.tombstones
        pulled.copy, pulled.bookmark = again.copy, again.bookmark
    return None


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _table(results: list[Pulled]) -> Table:
    table = Table("resource", "pulled", "records", "tombstones", "copy", "bookmark", "verified")
    for r in results:
        verified = "-" if r.verified is None else ("yes" if r.verified else "NO")
        if r.differing_buckets:
            shown = ", ".join(map(str, r.differing_buckets[:8]))
            more = "…" if len(r.differing_buckets) > 8 else ""
            verified += f" (buckets of 1,024: {shown}{more})"
        elif r.verified is None and r.unverified:
            verified = "server kept writing"
        kind = "transfer" if r.transfer else "changes"
        table.add_row(
            r.resource,
            kind,
            f"{r.records:,}",
            f"{r.tombstones:,}",
            "-" if r.copy is None else f"{r.copy:,}",
            r.bookmark or "-",
            verified,
        )
    return table


@click.command("pull")
@click.argument("base_url")
@click.option(
    "--resource",
    "resources",
    multiple=True,
    type=click.Choice(list(RECORD_TYPES)),
    help="A resource to mirror (repeat it); all 12 by default.",
)
@click.option(
    "--to", "to", required=True, help="The copy: sqlite:///copy.db or postgresql://user@host/db."
)
@reader_credentials
@click.option("--follow", is_flag=True, help="Keep polling for changes until stopped.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between polls with --follow.",
)
@click.option(
    "--verify", "check", is_flag=True, help="Compare the copy with the server's summaries."
)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON (one line per poll).")
def pull(
    base_url: str,
    resources: tuple[str, ...],
    to: str,
    integrator_key: str,
    token: str,
    follow: bool,
    interval: float,
    check: bool,
    as_json: bool,
) -> None:
    """Mirror a business's records into a local database, tombstones applied.

    One table per resource (sales_categories for sales-categories), a column per field,
    id as the key; each resource's bookmark in clubfeed_bookmarks, so the next run pulls
    only what changed. Exits 1 if --verify finds a difference.
    """
    names = list(resources) or list(RECORD_TYPES)
    console = Console(stderr=True)
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    try:
        client = Client(base_url, integrator_key=integrator_key, token=token)
        mirror = Mirror(to)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    except database_errors() as exc:
        raise click.ClickException(f"cannot open the copy: {_first_line(exc)}") from exc
    failed = False
    try:
        with client:
            with _progress(console) as progress:
                results = [pull_once(client, mirror, name, progress) for name in names]
            if check:
                for pulled in results:
                    found = verify(client, mirror, pulled)
                    if found is None:
                        pulled.unverified, failed = True, True
                        continue
                    pulled.verified = found.matches
                    pulled.differing_buckets = found.differing_buckets
                    failed = failed or not found.matches
            _report(console, results, as_json)
            if follow:  # SIGTERM ends the loop between polls (before it, it ends the process)
                signal.signal(signal.SIGTERM, _stop)
            while follow and not stop.wait(interval):
                changed = [pull_once(client, mirror, name, counted=False) for name in names]
                changed = [r for r in changed if r.records or r.tombstones or r.transfer]
                if changed:
                    _report(console, changed, as_json)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from exc
    except database_errors() as exc:
        raise click.ClickException(f"the copy's database failed: {_first_line(exc)}") from exc
    except KeyboardInterrupt:
        pass
    finally:
        mirror.close()
    if failed:
        raise SystemExit(1)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _report(console: Console, results: list[Pulled], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"resources": [asdict(r) for r in results]}))
    else:
        Console().print(_table(results))
