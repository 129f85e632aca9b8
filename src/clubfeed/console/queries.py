"""What the console reads beyond connections: locations, the zone for times, live record counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Select, func, literal, select, union_all

from clubfeed import catalogue
from clubfeed.storage.schema import RESOURCE_TABLES
from clubfeed.timefmt import is_timezone, zone


@dataclass(frozen=True)
class Location:
    id: str
    name: str
    city: str | None
    timezone: str


def locations(conn: Connection, *, business_id: int, limit: int) -> list[Location]:
    """The business's live locations by name, at most `limit` of them."""
    table = RESOURCE_TABLES["locations"]
    rows = conn.execute(
        select(table.c.id, table.c.name, table.c.city, table.c.timezone)
        .where(table.c.business_id == business_id, table.c.deleted_at.is_(None))
        .order_by(table.c.name, table.c.id)
        .limit(limit)
    )
    return [Location(r.id, r.name, r.city, r.timezone) for r in rows]


def main_location(conn: Connection, *, business_id: int) -> Location | None:
    """The business's first live location (earliest created): the zone its console shows times in.

    The first location is usually the flagship, and it stays the main one as others
    open; ranking by check-ins would cost a scan of every check-in on each page view.
    """
    table = RESOURCE_TABLES["locations"]
    row = conn.execute(
        select(table.c.id, table.c.name, table.c.city, table.c.timezone)
        .where(table.c.business_id == business_id, table.c.deleted_at.is_(None))
        .order_by(table.c.created_at, table.c.id)
        .limit(1)
    ).first()
    return None if row is None else Location(row.id, row.name, row.city, row.timezone)


def local_time(conn: Connection, *, business_id: int) -> dict[str, Any]:
    """A page's context for its times: `zone` (None for UTC) and the `main_location` it is from.

    A business without locations, or whose main location's zone this server's tzdata
    does not know, sees UTC.
    """
    main = main_location(conn, business_id=business_id)
    known: ZoneInfo | None = zone(main.timezone) if main and is_timezone(main.timezone) else None
    return {"zone": known, "main_location": main if known else None}


def live_counts(conn: Connection, *, business_id: int) -> dict[str, int]:
    """How many live (not deleted) records the business has of each resource, in catalogue order.

    One count per table, all in one statement: a round trip, not twelve.
    """

    def live(name: str) -> Select[str, int]:
        table = RESOURCE_TABLES[name]
        return (
            select(literal(name).label("resource"), func.count().label("n"))
            .select_from(table)
            .where(table.c.business_id == business_id, table.c.deleted_at.is_(None))
        )

    counts = union_all(*(live(resource.name) for resource in catalogue.RESOURCES))
    found: dict[str, int] = {row.resource: row.n for row in conn.execute(counts)}
    return {resource.name: found[resource.name] for resource in catalogue.RESOURCES}
