"""Bulk loading from NDJSON files: batches of up to 10,000 lines, each all or nothing."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import Engine

from clubfeed import tenants
from clubfeed.catalogue import Resource
from clubfeed.errors import ClubfeedError, InvalidInput, NotFound
from clubfeed.ingest import validate
from clubfeed.ingest.write import apply_changes
from clubfeed.storage.engine import read_connection, write_transaction

MAX_REPORTED = 50


class _Tombstone(msgspec.Struct):
    """A line that deletes: the feed's own tombstone shape, `{"id": ..., "deleted": true}`."""

    id: validate.RecordId
    deleted: bool
    modified_at: Any = None


@dataclass
class ImportReport:
    """What an import did; `failures` are (line number, problem) pairs."""

    lines: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    batches_failed: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)

    @property
    def failed_lines(self) -> list[int]:
        return [line for line, _ in self.failures]


@dataclass
class _Batch:
    upserts: list[Any] = field(default_factory=list)
    upsert_lines: list[int] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    delete_lines: list[int] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    size: int = 0
    bytes_read: int = 0


def _line_problem(exc: ClubfeedError) -> str:
    """The error as said of one line of a file, not of an HTTP request body."""
    return exc.detail.replace("The request body", "The line").removesuffix(" Nothing was written.")


def _parse_line(record_type: type[msgspec.Struct], raw: bytes) -> tuple[str, Any]:
    """("upsert", record) or ("delete", id); InvalidInput/BadRequest if the line is neither."""
    try:
        return "upsert", validate.decode(raw, record_type)
    except ClubfeedError as first:
        try:
            tombstone = msgspec.json.decode(raw, type=_Tombstone)
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise first from None
        if tombstone.deleted is not True:
            raise
        return "delete", tombstone.id


def _batches(resource: Resource, path: Path, batch_size: int) -> Iterator[_Batch]:
    record_type = validate.record_type(resource)
    batch = _Batch()
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            batch.bytes_read += len(raw)
            if number == 1:
                # Spreadsheet tools and Windows editors often start UTF-8 files with a BOM.
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if not raw.strip():
                continue
            batch.size += 1
            try:
                action, value = _parse_line(record_type, raw)
            except ClubfeedError as exc:
                batch.failures.append((number, _line_problem(exc)))
            else:
                if action == "upsert":
                    batch.upserts.append(value)
                    batch.upsert_lines.append(number)
                else:
                    batch.deletes.append(value)
                    batch.delete_lines.append(number)
            if batch.size == batch_size:
                yield batch
                batch = _Batch()
    if batch.size or batch.bytes_read:
        yield batch


def _line_failures(batch: _Batch, exc: InvalidInput) -> list[tuple[int, str]]:
    """Map a batch error's record indexes back to the file's line numbers, in line order."""
    failures = []
    first = (batch.upsert_lines or batch.delete_lines or [0])[0]
    for item in exc.errors:
        if item.place is None:
            line = first
        else:
            lines = batch.delete_lines if item.place.part == "delete" else batch.upsert_lines
            line = lines[item.place.index]
        failures.append((line, item.detail))
    failures.sort(key=lambda failure: failure[0])
    return failures or [(first, _line_problem(exc))]


def _write_batch(
    engine: Engine, resource: Resource, business_id: int, batch: _Batch, report: ImportReport
) -> None:
    if batch.failures:
        report.batches_failed += 1
        report.failures += batch.failures
        return
    if not batch.upserts and not batch.deletes:
        # Only blank lines: taking the business's write lock would change nothing.
        return
    try:
        checked = validate.validated(resource, batch.upserts, batch.deletes)
        with write_transaction(engine) as conn:
            changes = apply_changes(conn, business_id=business_id, batch=checked)
    except InvalidInput as exc:
        report.batches_failed += 1
        report.failures += _line_failures(batch, exc)
        return
    report.created += len(changes.created)
    report.updated += len(changes.updated)
    report.unchanged += len(changes.unchanged)
    report.deleted += len(changes.deleted)


def import_file(
    engine: Engine,
    resource: Resource,
    path: Path,
    *,
    business_id: int,
    batch_size: int = validate.MAX_BATCH,
    console: Console | None = None,
) -> ImportReport:
    """Load `path` into `resource` of one business, showing progress; a failing batch writes nothing."""
    console = console or Console(stderr=True)
    with read_connection(engine) as conn:
        if not tenants.exists(conn, business_id):
            raise NotFound(
                f"There is no business {business_id}; create it with `clubfeed business create`."
            )
    report = ImportReport()
    columns = (
        TextColumn(f"importing {resource.name}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("import", total=path.stat().st_size)
        for batch in _batches(resource, path, batch_size):
            report.lines += batch.size
            _write_batch(engine, resource, business_id, batch, report)
            progress.advance(task, batch.bytes_read)
    _print_summary(console, resource, path, report)
    return report


def _print_summary(console: Console, resource: Resource, path: Path, report: ImportReport) -> None:
    table = Table(title=f"{escape(path.name)} → {resource.name}")
    for name in ("lines", "created", "updated", "unchanged", "deleted", "failed batches"):
        table.add_column(name, justify="right")
    table.add_row(
        *(
            f"{n:,}"
            for n in (
                report.lines,
                report.created,
                report.updated,
                report.unchanged,
                report.deleted,
                report.batches_failed,
            )
        )
    )
    console.print(table)
    # Details quote the file's own data, so they are escaped, not read as markup, and
    # each failure stays on one line for grep.
    for line, detail in report.failures[:MAX_REPORTED]:
        console.print(f"[red]line {line}[/red]: {escape(detail)}", soft_wrap=True)
    if len(report.failures) > MAX_REPORTED:
        console.print(f"… and {len(report.failures) - MAX_REPORTED:,} more failing lines.")
    if report.failures:
        console.print(
            "Failed batches wrote nothing; fix those lines and import the file again "
            "(records already written are left unchanged)."
        )
