"""Tombstone retention: deletes stay in the feed for a while, then are purged.

Once a resource's tombstones before an instant are gone, a range query of it starting
before that instant could silently miss deletes, so it is answered 410 Gone instead: the
poller does a complete transfer and polls on from its consistent_until. The point is
kept per resource, so that purging check-ins does not refuse a range of locations.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from clubfeed import catalogue
from clubfeed.errors import HistoryPurged
from clubfeed.feed import clock
from clubfeed.timefmt import format_us

_MOVE_PURGE_POINT = text(
    "INSERT INTO purge_points (business_id, resource, purged_until_us) VALUES (:b, :r, :point) "
    "ON CONFLICT (business_id, resource) DO UPDATE SET purged_until_us = CASE "
    "WHEN excluded.purged_until_us > purge_points.purged_until_us "
    "THEN excluded.purged_until_us ELSE purge_points.purged_until_us END"
)


def purge(conn: Connection, business_id: int, before_us: int) -> dict[str, int]:
    """Delete the business's tombstones stamped before `before_us`; counts per resource.

    Each resource's purge point moves just past its newest tombstone deleted (not to `before_us`),
    so only a window that could really miss a delete is refused. It moves in the same
    commit as the rows go, so a reader sees either both or neither.
    """
    clock.lock(conn, business_id)
    purged = {}
    for resource in catalogue.RESOURCES:
        stamps = conn.execute(
            text(
                f"DELETE FROM {resource.table} WHERE business_id = :b "
                "AND modified_at < :before AND deleted_at IS NOT NULL RETURNING modified_at"
            ),
            {"b": business_id, "before": before_us},
        ).scalars()
        newest, purged[resource.name] = 0, 0
        for stamp in stamps:
            purged[resource.name] += 1
            newest = max(newest, stamp)
        if newest:
            conn.execute(
                _MOVE_PURGE_POINT, {"b": business_id, "r": resource.name, "point": newest + 1}
            )
    return purged


def check_window(after_scan: clock.Reading, since_us: int | None) -> None:
    """Refuse a range reaching back before its resource's purge point.

    `after_scan` is the clock read, for the resource, after the page's scan: if a purge committed
    before the scan, this later read sees its purge point; if after, the scan
    still saw the tombstones.
    """
    purged_until = after_scan.purged_until_us
    if purged_until and (since_us is None or since_us < purged_until):
        raise HistoryPurged(
            f"Deletes before {format_us(purged_until)} are no longer kept, so this range "
            "could miss some. Do a complete transfer (no modified_since or modified_after) and "
            "poll on from its consistent_until."
        )
