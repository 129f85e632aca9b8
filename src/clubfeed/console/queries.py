"""What the console's overview reads: the business, its locations, and its live record counts."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Select, func, literal, select, union_all

from clubfeed import catalogue
from clubfeed.storage.schema import RESOURCE_TABLES


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
