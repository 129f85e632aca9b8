"""Datetimes on the wire (RFC 3339, always with an offset) and in storage (integer µs, UTC)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


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
    """RFC 3339 with microseconds, in `zone`'s offset at that instant (UTC when None)."""
    return from_us(us, zone).isoformat(timespec="microseconds")


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


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`; ZoneInfoNotFoundError (a KeyError) when unknown."""
    return ZoneInfo(name)


def is_timezone(name: str) -> bool:
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
