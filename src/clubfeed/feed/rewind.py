"""A server that went back in time: positions its clock has not reached are refused.

When a backup is restored, or the database fails over to a replica that lags, a
business's clock goes back with its rows. A poller holding a consistent_until (or
a cursor) from before then holds changes the server no longer has: records,
versions and deletes that are gone from it. No page can tell it so, and an empty page would let it
poll on with a copy that never again matches. So a position beyond the clock is
answered 410: the poller does a complete transfer and polls on from there.

The clock only moves forward, so on a server that never went back every position
it issued is at or below its clock. A modified_since the poller made up itself
(its own clock, say) and that lies past the business's last change is refused
the same way: the server cannot tell it from a lost one, and the window it names
is not one it can answer. Evidence lasts until the clock passes the position
again: the first write after a restore moves `last_us` to the database's now,
and enough writes move `seq` past a cursor's bound.

The checks compare numbers a page reads anyway: a first page and a range's pages read
the clock row, and a complete transfer's later pages check its seq inside their scan.
Only a cursor page that comes back empty costs one statement more.
"""

from __future__ import annotations

from clubfeed.errors import HistoryRewound
from clubfeed.feed import clock
from clubfeed.feed.cursor import CursorState
from clubfeed.timefmt import format_us

_DO = (
    "Do a complete transfer (no modified_since or modified_after) and poll on from its "
    "consistent_until, or from the greatest modified_at it returned with modified_after."
)


def check_since(
    now: clock.Reading, since_us: int | None, parameter: str = "modified_since"
) -> None:
    """Refuse a window starting after everything this business's history holds.

    `parameter` is what the client sent: `modified_after` T asks from T + 1 µs on.
    """
    if since_us is not None and since_us > now.consistent_until_us:
        if parameter == "modified_after":
            position = (
                f"modified_after {format_us(since_us - 1)} is later than this business's last "
                f"change ({format_us(now.last_us)}), the end of the changes"
            )
        else:
            position = (
                f"modified_since {format_us(since_us)} is later than this business's "
                f"consistent_until {format_us(now.consistent_until_us)}, the end of the changes"
            )
        raise HistoryRewound(
            f"{position} this server holds. Either the server went back in time (its database "
            "was restored or failed over), so changes you already have are gone from it, or "
            f"the time did not come from this API. {_DO}"
        )


def check_cursor(now: clock.Reading, state: CursorState, since_us: int | None) -> None:
    """Refuse a cursor issued when this business's history reached further than it does now."""
    until = max(state.until_us, since_us or 0)
    if state.hi > now.seq or until > now.consistent_until_us:
        raise HistoryRewound(
            "This cursor was issued when this business's history reached further than it "
            f"does now (consistent_until {format_us(now.consistent_until_us)}): the server "
            "went back in time (its database was restored or failed over), so changes you "
            f"already have are gone from it. {_DO}"
        )
