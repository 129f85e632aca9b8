"""Datetimes on the wire (RFC 3339, always with an offset) and in storage (integer µs, UTC)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, available_timezones

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_ONE_MINUTE = timedelta(minutes=1)


class NaiveDatetimeError(ValueError):
    """A datetime without an offset: its instant is unknowable, so it is refused."""


def now_us() -> int:
    return time.time_ns() // 1000


def to_us(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact, no float rounding)."""
    return (value - EPOCH) // _ONE_US


def from_us(us: int, zone: ZoneInfo | None = None) -> datetime:
    instant = EPOCH + timedelta(microseconds=us)
    return instant if zone is None else instant.astimezone(zone)


def format_us(us: int, zone: ZoneInfo | None = None) -> str:
    """RFC 3339 with microseconds, in `zone`'s offset at that instant (UTC when None).

    RFC 3339 offsets are whole minutes (`hh:mm`). Before standard time many zones ran
    on local mean time with offsets such as +09:14:20 (Adelaide until 1895); such an
    instant is given in UTC instead, exactly and in a form every parser reads back.
    """
    value = from_us(us, zone)
    offset = value.utcoffset()
    if offset is not None and offset % _ONE_MINUTE:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


# A day inside datetime's range at each end, so that an instant renders in any offset.
EARLIEST_US = (datetime(1, 1, 2, tzinfo=UTC) - EPOCH) // _ONE_US
LATEST_US = (datetime(9999, 12, 31, tzinfo=UTC) - EPOCH) // _ONE_US
RANGE_TEXT = "between 0001-01-02 and 9999-12-30 (UTC)"


def out_of_range(value: datetime) -> bool:
    """Too near the ends of datetime's range to render in every offset."""
    # Only the first and last years can be, so only they are measured.
    return not 1 < value.year < 9999 and not EARLIEST_US <= to_us(value) < LATEST_US


def parse_aware(text: str) -> datetime:
    """Parse an RFC 3339 / ISO 8601 datetime that carries an offset (`Z` or `±hh:mm`)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not an ISO 8601 datetime; use e.g. 2026-01-31T18:30:00+00:00"
        ) from exc
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(f"{text!r} has no offset; add one, e.g. {text}Z or {text}+00:00")
    return value


# Every instant a UTC datetime can hold: what a query bound may be, since it is only
# ever rendered back in UTC (as `consistent_until`, or inside a cursor).
_FIRST_INSTANT_US = (datetime.min.replace(tzinfo=UTC) - EPOCH) // _ONE_US
LAST_INSTANT_US = (datetime.max.replace(tzinfo=UTC) - EPOCH) // _ONE_US


def parse_instant(text: str) -> int:
    """The µs since the epoch of an aware datetime whose UTC instant a datetime can hold.

    `0001-01-01T00:00:00+23:59` parses, but its instant lies in the year 0: refused.
    """
    us = to_us(parse_aware(text))
    if not _FIRST_INSTANT_US <= us <= LAST_INSTANT_US:
        raise ValueError(
            f"{text!r} lies outside the instants supported, "
            "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"
        )
    return us


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The zone called `name` (stored names included); ZoneInfoNotFoundError when unknown."""
    return ZoneInfo(name)


# Names in the zoneinfo search path that are no IANA zone: the host's own zone
# (a link to /etc/localtime, different on every machine), the POSIX-rules template,
# and IANA's placeholder for "not configured" (abbreviation "-00").
_NOT_IANA = frozenset({"localtime", "posixrules", "Factory"})


@cache
def iana_names() -> frozenset[str]:
    """The IANA zone and link names, found once (a walk of the zone directories).

    Backward links such as `US/Eastern` are IANA names still, and what older systems
    send, so they are accepted; stored locations may already hold them.
    """
    return frozenset(available_timezones()) - _NOT_IANA


def is_timezone(name: str) -> bool:
    """An IANA name exactly as the database spells it (so not a directory such as `America`)."""
    return name in iana_names()
