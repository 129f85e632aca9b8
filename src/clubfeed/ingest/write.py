"""Applying a validated write: one transaction, all or nothing, stamped by the change clock.

Order inside the transaction matters: the clock row is locked first, so every
later read (existing rows, references, time zones) sees everything committed
before, and nothing else of this business can commit until this does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, select

from clubfeed import catalogue, checksums
from clubfeed.catalogue import Resource
from clubfeed.errors import ErrorItem, InvalidInput, NotFound, Place
from clubfeed.feed import clock, summary
from clubfeed.ingest import idempotency
from clubfeed.ingest.idempotency import StoredResponse
from clubfeed.ingest.render import (
    columns_from_record,
    content_of,
    render_body,
    render_fields,
    tombstone_body,
    with_created_at,
    with_server_times,
)
from clubfeed.ingest.validate import Batch
from clubfeed.storage import bulk
from clubfeed.storage.engine import write_transaction
from clubfeed.storage.idlists import rows_by_id
from clubfeed.storage.schema import RESOURCE_TABLES
from clubfeed.timefmt import format_us, zone


@dataclass
class Changes:
    """What a write did, by id; `bodies` holds each touched record's JSON as now stored."""

    modified_us: int
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    bodies: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Existing:
    created_at: int
    deleted_at: int | None
    body: str
    timezone: str | None
    share: dict[str, int]  # its id bucket and checksum halves, as summaries count it


def _timezone_column(resource: Resource) -> str:
    """Locations carry the zone their events render in; other tables select a NULL in its place."""
    return ", timezone" if "timezone" in resource.field_by_name else ", NULL AS timezone"


def _existing(
    conn: Connection, resource: Resource, business_id: int, ids: list[str]
) -> dict[str, _Existing]:
    columns = (
        f"id, created_at, deleted_at, body{_timezone_column(resource)}, id_bucket, sum_hi, sum_lo"
    )
    rows = rows_by_id(conn, resource.table, columns, business_id, ids)
    return {
        record_id: _Existing(
            created_at, deleted_at, body, timezone, {"id_bucket": b, "sum_hi": hi, "sum_lo": lo}
        )
        for record_id, created_at, deleted_at, body, timezone, b, hi, lo in rows
    }


def _live_targets(
    conn: Connection, target: Resource, business_id: int, ids: set[str]
) -> dict[str, str | None]:
    """Live records of `target` among `ids`, with their time zone when `target` has one."""
    columns = f"id{_timezone_column(target)}"
    rows = rows_by_id(conn, target.table, columns, business_id, sorted(ids), "deleted_at IS NULL")
    return {record_id: timezone for record_id, timezone in rows}


def _check_references(
    conn: Connection,
    resource: Resource,
    business_id: int,
    rows: list[dict[str, Any]],
) -> dict[str, ZoneInfo]:
    """Every reference must name a live record of this business (or one earlier in the batch).

    Returns the zones of the locations the rows reference, for rendering local times.
    """
    errors: list[ErrorItem] = []
    zones: dict[str, ZoneInfo] = {}
    for ref in resource.refs:
        assert ref.ref is not None
        target = catalogue.get(ref.ref)
        wanted = {row[ref.name] for row in rows if row[ref.name] is not None}
        live = _live_targets(conn, target, business_id, wanted)
        if ref.name == "location_id":
            zones = {loc: zone(tz) for loc, tz in live.items() if tz is not None}
        earlier: set[str] = set()
        for index, row in enumerate(rows):
            value = row[ref.name]
            if value is not None and value not in live and value not in earlier:
                errors.append(
                    ErrorItem.at(
                        Place("upsert", index, row["id"], ref.name),
                        f"{ref.name} names {target.name} record {value!r}, which this business "
                        "does not have; write that record first",
                    )
                )
            if target is resource:
                earlier.add(row["id"])
    if errors:
        raise InvalidInput.listing(errors)
    return zones


@dataclass(frozen=True)
class Prepared:
    """A validated batch with its rows' columns and JSON rendered, ready for its transaction.

    `prepare` makes it before the transaction, so a writer of many records holds the
    business's lock only for what needs it: the clock's stamp, the lookups, the statements.
    Local times were rendered in `zones` (location id → zone, None when not known then);
    the write re-renders a record whose location it finds in another zone. One write uses it.
    """

    batch: Batch
    rows: list[dict[str, Any]]
    rendered: list[str] | None
    zones: Mapping[str, ZoneInfo] | None


def prepare(batch: Batch, zones: Mapping[str, ZoneInfo] | None = None) -> Prepared:
    """Columns, id buckets and JSON (up to the server times) of the batch's upserts.

    `zones` names the zones of the locations the records reference; without them, a
    resource with local times is rendered by the write, once it has read them.
    """
    resource = batch.resource
    rows = [columns_from_record(resource, record) for record in batch.upserts]
    for row in rows:
        row["id_bucket"] = checksums.id_bucket(row["id"])
    if not resource.has_local_times:
        return Prepared(batch, rows, [render_fields(resource, row, None) for row in rows], None)
    if zones is None:
        return Prepared(batch, rows, None, None)
    rendered = [render_fields(resource, row, zones.get(row["location_id"])) for row in rows]
    return Prepared(batch, rows, rendered, zones)


def apply_changes(conn: Connection, *, business_id: int, batch: Batch | Prepared) -> Changes:
    """Write a validated batch in the caller's transaction; InvalidInput changes nothing.

    The caller commits. Records identical to what is stored are left alone, so a
    POS resending its data does not flood the feed with non-changes.
    """
    prepared = batch if isinstance(batch, Prepared) else prepare(batch)
    resource, upserts, deletes = (
        prepared.batch.resource,
        prepared.batch.upserts,
        prepared.batch.deletes,
    )
    table = RESOURCE_TABLES[resource.name]
    tick = clock.advance(conn, business_id, len(upserts) + len(deletes))
    changes = Changes(modified_us=tick.us)
    rows = prepared.rows
    existing = _existing(conn, resource, business_id, [r["id"] for r in rows] + list(deletes))
    zones = _check_references(conn, resource, business_id, rows)
    if prepared.batch.single and deletes and deletes[0] not in existing:
        raise NotFound(f"There is no {resource.name} record {deletes[0]!r} to delete.")

    modified_at = format_us(tick.us)
    local_times = resource.has_local_times
    rendered_in = prepared.zones or {}
    tally = summary.Tally()
    fresh: list[dict[str, Any]] = []  # ids this business has never had (or purged)
    replacing: list[dict[str, Any]] = []
    moved_zones: list[tuple[str, ZoneInfo]] = []
    for offset, row in enumerate(rows):
        record_id = row["id"]
        before = existing.get(record_id)
        live = before if before is not None and before.deleted_at is None else None
        created_us = live.created_at if live is not None else tick.us
        created_at = format_us(created_us) if live is not None else modified_at
        fields = prepared.rendered[offset] if prepared.rendered is not None else None
        if local_times:
            location_zone = zones.get(row["location_id"])
            if fields is None or rendered_in.get(row["location_id"]) is not location_zone:
                fields = render_fields(resource, row, location_zone)
        assert fields is not None, "prepare renders every record without local times"
        if live is not None and content_of(live.body) == with_created_at(fields, created_at):
            changes.unchanged.append(record_id)
            changes.bodies[record_id] = live.body
            continue
        body = with_server_times(fields, created_at, modified_at)
        (changes.updated if live is not None else changes.created).append(record_id)
        # A location's zone may change across a delete and re-create, too.
        if before is not None and before.timezone not in (None, row.get("timezone")):
            moved_zones.append((record_id, zone(row["timezone"])))
        if live is not None:
            tally.add(live.share, sign=-1)
        row.update(summary.hash_columns(record_id, modified_at))
        tally.add(row)
        row.update(
            business_id=business_id,
            change_seq=tick.first + offset,
            created_at=created_us,
            modified_at=tick.us,
            deleted_at=None,
            body=body,
        )
        changes.bodies[record_id] = body
        (fresh if before is None else replacing).append(row)
    # The clock row locked above keeps every other write of this business out until
    # commit, so an id `existing` lacks is still absent: a plain insert is safe.
    bulk.insert(conn, table, fresh)
    bulk.upsert(conn, table, replacing)

    stamps: list[dict[str, Any]] = []
    for offset, record_id in enumerate(deletes, start=tick.first + len(rows)):
        # Deleting what is already gone (or was never sent, or was purged) is a no-op,
        # so a POS can resend its deletes safely.
        gone = existing.get(record_id)
        if gone is None or gone.deleted_at is not None:
            changes.unchanged.append(record_id)
            if gone is not None:
                changes.bodies[record_id] = gone.body
            continue
        tally.add(gone.share, sign=-1)
        body = tombstone_body(record_id, modified_at)
        stamps.append(
            {
                "id": record_id,
                "change_seq": offset,
                "modified_at": tick.us,
                "deleted_at": tick.us,
                "body": body,
                **summary.TOMBSTONE_COLUMNS,
            }
        )
        changes.deleted.append(record_id)
        changes.bodies[record_id] = body
    bulk.restamp(conn, table, business_id, stamps)
    tally.apply(conn, business_id, resource)

    for location_id, new_zone in moved_zones:
        _rerender_local_times(conn, business_id, location_id, new_zone, tick.us, modified_at)
    return changes


def _rerender_local_times(
    conn: Connection,
    business_id: int,
    location_id: str,
    new_zone: ZoneInfo,
    modified_us: int,
    modified_at: str,
) -> None:
    """A location changed time zone: its events' offsets change, so restamp them for pollers.

    Events whose rendering does not change (an alias of the same zone) are left alone.
    """
    for dependent in catalogue.dependents_with_local_times():
        table = RESOURCE_TABLES[dependent.name]
        columns = [table.c.id, table.c.created_at, table.c.extra, table.c.body]
        columns += [table.c.id_bucket, table.c.sum_hi, table.c.sum_lo]
        columns += [table.c[f.name] for f in dependent.fields]
        rows = conn.execute(
            select(*columns)
            .where(
                table.c.business_id == business_id,
                table.c.location_id == location_id,
                table.c.deleted_at.is_(None),
            )
            .order_by(table.c.change_seq)
        ).mappings()
        changed = []
        tally = summary.Tally()
        for row in rows:
            body = render_body(dependent, row, new_zone, format_us(row["created_at"]), modified_at)
            if content_of(body) != content_of(row["body"]):
                changed.append((row["id"], body))
                tally.add(row, sign=-1)
        if not changed:
            continue
        first = clock.extend(conn, business_id, len(changed))
        stamps = []
        for i, (record_id, body) in enumerate(changed):
            share = summary.row_columns(record_id, modified_at)
            tally.add(share)
            stamps.append(
                {
                    "id": record_id,
                    "change_seq": first + i,
                    "modified_at": modified_us,
                    "deleted_at": None,
                    "body": body,
                    **share,
                }
            )
        bulk.restamp(conn, table, business_id, stamps)
        tally.apply(conn, business_id, dependent)


class _Replayed(Exception):
    """Raised inside the transaction to roll it back and answer with a stored response."""

    def __init__(self, response: StoredResponse) -> None:
        super().__init__()
        self.response = response


@dataclass(frozen=True)
class IdempotencyRequest:
    key: str
    fingerprint: bytes


def write(
    engine: Engine,
    *,
    business_id: int,
    batch: Batch,
    respond: Callable[[Changes], StoredResponse],
    idempotency_request: IdempotencyRequest | None = None,
) -> StoredResponse:
    """Run one write in its own transaction and answer it; a replayed key answers as before."""
    try:
        with write_transaction(engine) as conn:
            if idempotency_request is not None:
                key, fingerprint = idempotency_request.key, idempotency_request.fingerprint
                clock.lock(conn, business_id)
                stored = idempotency.find(conn, business_id, key, fingerprint)
                if stored is not None:
                    raise _Replayed(stored)
            changes = apply_changes(conn, business_id=business_id, batch=batch)
            response = respond(changes)
            if idempotency_request is not None:
                idempotency.store(conn, business_id, key, fingerprint, response)
    except _Replayed as replay:
        return replay.response
    return response
