"""Tombstone retention: deletes stay in the feed for a while, then are purged.

Once a business's tombstones before an instant are gone, a range query starting
before it could silently miss deletes, so it is answered 410 Gone instead: the
poller does a complete transfer and polls on from its consistent_until.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from clubfeed import catalogue
from clubfeed.errors import HistoryPurged
from clubfeed.feed import clock
from clubfeed.timefmt import format_us

_MOVE_PURGE_POINT = text(
    "UPDATE change_clock SET purged_until_us = :point "
    "WHERE business_id = :b AND purged_until_us < :point"
)


def purge(conn: Connection, business_id: int, before_us: int) -> dict[str, int]:
    """Delete the business's tombstones stamped before `before_us`; counts per resource.

    The purge point moves just past the newest tombstone deleted (not to `before_us`),
    so only a window that could really miss a delete is refused. It moves in the same
    commit as the rows go, so a reader sees either both or neither.
    """
    clock.lock(conn, business_id)
    purged, newest = {}, 0
    for resource in catalogue.RESOURCES:
        stamps = conn.execute(
            text(
                f"DELETE FROM {resource.table} WHERE business_id = :b "
                "AND modified_at < :before AND deleted_at IS NOT NULL RETURNING modified_at"
            ),
            {"b": business_id, "before": before_us},
        ).scalars()
        purged[resource.name] = 0
        for stamp in stamps:
            purged[resource.name] += 1
            newest = max(newest, stamp)
    if newest:
        conn.execute(_MOVE_PURGE_POINT, {"b": business_id, "point": newest + 1})
    return purged


def check_window(after_scan: clock.Reading, since_us: int | None) -> None:
    """Refuse a range reaching back before the purge point.

    `after_scan` is the clock read after the page's scan: if a purge committed
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
