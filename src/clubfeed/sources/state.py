"""What a source runner keeps in clubfeed's database: cursors, counts, problems, tenants.

Everything here is written after (or with) the records it describes, so a runner killed
at any point restarts from a cursor no later than what it wrote: it reads a little
again, and records read again are unchanged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import Connection, delete, func, select, tuple_

from clubfeed import catalogue
from clubfeed.storage.engine import dialect_insert
from clubfeed.storage.schema import source_counts, source_cursors, source_problems, source_tenants
from clubfeed.timefmt import now_us

_NO_VALUE = object()


def encode_value(value: Any) -> str:
    """A value read from the source as typed JSON (`{"int": 42}`), to compare as it was read."""
    if value is None:
        tagged: dict[str, Any] = {"null": None}
    elif isinstance(value, bool):
        tagged = {"bool": value}
    elif isinstance(value, int):
        tagged = {"int": value}
    elif isinstance(value, float):
        tagged = {"float": value}
    elif isinstance(value, Decimal):
        tagged = {"decimal": str(value)}
    elif isinstance(value, dt.datetime):
        tagged = {"datetime": value.isoformat()}
    elif isinstance(value, dt.date):
        tagged = {"date": value.isoformat()}
    elif isinstance(value, (bytes, bytearray, memoryview)):
        tagged = {"bytes": bytes(value).hex()}
    else:
        tagged = {"str": str(value)}
    return msgspec.json.encode(tagged).decode()


def decode_value(text: str) -> Any:
    """The value `encode_value` stored."""
    ((tag, value),) = msgspec.json.decode(text).items()
    if tag in ("null", "bool", "int", "float", "str"):
        return value
    if tag == "decimal":
        return Decimal(value)
    if tag == "datetime":
        return dt.datetime.fromisoformat(value)
    if tag == "date":
        return dt.date.fromisoformat(value)
    if tag == "bytes":
        return bytes.fromhex(value)
    raise ValueError(f"unknown stored value tag {tag!r}")


@dataclass
class Cursor:
    """Where a resource's reading stands (see `sources/runner.py` for what each part means)."""

    phase: str = "backfill"
    backfill_limit: str | None = None
    backfill_after: str | None = None
    watermark: str | None = None
    reconciled_at: int | None = None


def load_cursor(conn: Connection, mapping: str, resource: str) -> Cursor:
    row = conn.execute(
        select(
            source_cursors.c.phase,
            source_cursors.c.backfill_limit,
            source_cursors.c.backfill_after,
            source_cursors.c.watermark,
            source_cursors.c.reconciled_at,
        ).where(source_cursors.c.mapping == mapping, source_cursors.c.resource == resource)
    ).first()
    return Cursor(*row) if row is not None else Cursor()


def save_cursor(conn: Connection, mapping: str, resource: str, **values: Any) -> None:
    """Set these columns of the resource's cursor row (made on first use)."""
    insert = dialect_insert(conn)(source_cursors)
    row = {"mapping": mapping, "resource": resource, "phase": "backfill", **values}
    conn.execute(
        insert.values(row).on_conflict_do_update(
            index_elements=["mapping", "resource"], set_=values
        )
    )


def add_counts(
    conn: Connection,
    mapping: str,
    resource: str,
    business_id: int,
    *,
    created: int = 0,
    updated: int = 0,
    unchanged: int = 0,
    deleted: int = 0,
) -> None:
    counts = {"created": created, "updated": updated, "unchanged": unchanged, "deleted": deleted}
    insert = dialect_insert(conn)(source_counts)
    statement = insert.values(
        mapping=mapping, resource=resource, business_id=business_id, **counts
    ).on_conflict_do_update(
        index_elements=["mapping", "resource", "business_id"],
        set_={name: source_counts.c[name] + insert.excluded[name] for name in counts},
    )
    conn.execute(statement)


@dataclass(frozen=True)
class Problem:
    tenant: str
    key: Any
    kind: str  # "value", "reference" or "tenant"
    column: str | None
    detail: str
    business_id: int | None = None


def record_problems(
    conn: Connection, mapping: str, resource: str, problems: Iterable[Problem]
) -> None:
    insert = dialect_insert(conn)(source_problems)
    seen = now_us()
    rows = [
        {
            "mapping": mapping,
            "resource": resource,
            "tenant": p.tenant,
            "source_key": encode_value(p.key),
            "kind": p.kind,
            "business_id": p.business_id,
            "column_name": p.column,
            "detail": p.detail,
            "seen_at": seen,
        }
        for p in problems
    ]
    if not rows:
        return
    for row in rows:
        conn.execute(
            insert.values(row).on_conflict_do_update(
                index_elements=["mapping", "resource", "tenant", "source_key"],
                set_={
                    k: row[k] for k in ("kind", "business_id", "column_name", "detail", "seen_at")
                },
            )
        )


def clear_problems(
    conn: Connection, mapping: str, resource: str, keys: Iterable[tuple[str, Any]]
) -> None:
    """Forget the problems of these (tenant, source key) rows: written, or gone."""
    pairs = [(tenant, encode_value(key)) for tenant, key in keys]
    for start in range(0, len(pairs), 500):
        conn.execute(
            delete(source_problems).where(
                source_problems.c.mapping == mapping,
                source_problems.c.resource == resource,
                tuple_(source_problems.c.tenant, source_problems.c.source_key).in_(
                    pairs[start : start + 500]
                ),
            )
        )


def problem_keys(
    conn: Connection,
    mapping: str,
    resource: str,
    *,
    kind: str | None = None,
    limit: int | None = 1000,
) -> list[tuple[str, Any]]:
    """(tenant, source key) of the rows with problems, oldest first (`limit` None: all)."""
    query = select(source_problems.c.tenant, source_problems.c.source_key).where(
        source_problems.c.mapping == mapping, source_problems.c.resource == resource
    )
    if kind is not None:
        query = query.where(source_problems.c.kind == kind)
    rows = conn.execute(query.order_by(source_problems.c.seen_at).limit(limit))
    return [(tenant, decode_value(key)) for tenant, key in rows]


def tenant_businesses(conn: Connection, mapping: str) -> dict[str, int]:
    """The businesses made for this mapping's tenants (create_missing)."""
    rows = conn.execute(
        select(source_tenants.c.tenant, source_tenants.c.business_id).where(
            source_tenants.c.mapping == mapping
        )
    )
    return {tenant: business_id for tenant, business_id in rows}


def remember_tenant(conn: Connection, mapping: str, tenant: str, business_id: int) -> None:
    conn.execute(
        source_tenants.insert().values(mapping=mapping, tenant=tenant, business_id=business_id)
    )


def report(conn: Connection, mapping: str) -> list[dict[str, Any]]:
    """Per resource: its cursor, counts per business and open problems, for `source status`."""
    cursors = conn.execute(
        select(source_cursors).where(source_cursors.c.mapping == mapping)
    ).mappings()
    out: dict[str, dict[str, Any]] = {}
    for row in cursors:
        watermark = row["watermark"]
        out[row["resource"]] = {
            "resource": row["resource"],
            "phase": row["phase"],
            "watermark": None if watermark is None else _shown(decode_value(watermark)),
            "guarantee": row["guarantee"],
            "held_since_us": row["held_since"],
            "caught_up_at_us": row["caught_up_at"],
            "last_error": row["last_error"],
            "last_error_at_us": row["last_error_at"],
            "reconciled_at_us": row["reconciled_at"],
            "reconcile_seconds": (
                None if row["reconcile_seconds"] is None else row["reconcile_seconds"] / 1000
            ),
            "reconcile_repaired": row["reconcile_repaired"],
            "reconcile_deleted": row["reconcile_deleted"],
            "businesses": [],
            "problems": {},
        }
    counts = conn.execute(
        select(source_counts)
        .where(source_counts.c.mapping == mapping)
        .order_by(source_counts.c.resource, source_counts.c.business_id)
    ).mappings()
    for row in counts:
        if row["resource"] in out:
            out[row["resource"]]["businesses"].append(
                {k: row[k] for k in ("business_id", "created", "updated", "unchanged", "deleted")}
            )
    problems = conn.execute(
        select(
            source_problems.c.resource,
            source_problems.c.kind,
            source_problems.c.tenant,
            source_problems.c.source_key,
            source_problems.c.column_name,
            source_problems.c.detail,
        )
        .where(source_problems.c.mapping == mapping)
        .order_by(source_problems.c.resource, source_problems.c.seen_at)
    )
    for resource, kind, tenant, key, column, detail in problems:
        if resource in out:
            listed = out[resource]["problems"].setdefault(kind, [])
            listed.append(
                {
                    "tenant": tenant or None,
                    "key": _shown(decode_value(key)),
                    "column": column,
                    "detail": detail,
                }
            )
    order = {name: i for i, name in enumerate(catalogue.NAMES)}
    return sorted(out.values(), key=lambda row: order.get(row["resource"], len(order)))


def _shown(value: Any) -> Any:
    """A stored source value as JSON can show it."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value) if isinstance(value, Decimal) else value


@dataclass(frozen=True)
class Overview:
    """Every mapping's state at once, summed over businesses: what `/metrics` shows."""

    cursors: list[dict[str, Any]]
    counts: dict[tuple[str, str], dict[str, int]]  # (mapping, resource) → outcome → records
    problems: dict[tuple[str, str, str], int]  # (mapping, resource, kind) → open problems


def overview(conn: Connection) -> Overview:
    """Three small grouped reads; no row holds a business, so neither does a metric label."""
    cursors = [
        dict(row)
        for row in conn.execute(
            select(
                source_cursors.c.mapping,
                source_cursors.c.resource,
                source_cursors.c.phase,
                source_cursors.c.guarantee,
                source_cursors.c.held_since,
                source_cursors.c.caught_up_at,
                source_cursors.c.last_error,
                source_cursors.c.reconciled_at,
                source_cursors.c.reconcile_seconds,
            ).order_by(source_cursors.c.mapping, source_cursors.c.resource)
        ).mappings()
    ]
    outcomes = ("created", "updated", "unchanged", "deleted")
    summed = conn.execute(
        select(
            source_counts.c.mapping,
            source_counts.c.resource,
            *(func.sum(source_counts.c[name]) for name in outcomes),
        ).group_by(source_counts.c.mapping, source_counts.c.resource)
    )
    counts = {
        (mapping, resource): {
            name: int(value or 0) for name, value in zip(outcomes, values, strict=True)
        }
        for mapping, resource, *values in summed
    }
    grouped = conn.execute(
        select(
            source_problems.c.mapping,
            source_problems.c.resource,
            source_problems.c.kind,
            func.count(),
        ).group_by(source_problems.c.mapping, source_problems.c.resource, source_problems.c.kind)
    )
    problems = {(m, r, k): int(n) for m, r, k, n in grouped}
    return Overview(cursors, counts, problems)
