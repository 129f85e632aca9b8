"""Reading the times a server serves, strictly: ISO 8601 with an offset, or not a time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from clubfeed.catalogue import BY_NAME, Kind

EPOCH = "1970-01-01T00:00:00Z"
FUTURE = "2999-01-01T00:00:00Z"

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})"
)


def instant(text: str) -> datetime | None:
    """The aware datetime `text` names, or None if it is not ISO 8601 with an offset
    (a naive time names no instant). Digits past microseconds are dropped."""
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        if offset == "Z":
            zone = UTC
        else:
            hours, minutes = int(offset[1:3]), int(offset[4:6])
            if minutes >= 60:
                return None
            sign = -1 if offset[0] == "-" else 1
            zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, zone
        )
    except ValueError:  # a day, hour or offset out of range (timezone() takes under 24 h)
        return None


def time_fields(resource: str) -> tuple[str, ...]:
    """The fields of a resource's records that hold times: its event times, then the
    server's `created_at` and `modified_at`."""
    spec = BY_NAME.get(resource)
    events = tuple(f.name for f in spec.fields if f.kind is Kind.DATETIME) if spec else ()
    return (*events, "created_at", "modified_at")


def event_fields(resource: str) -> tuple[str, ...]:
    """Event times at a location, which the location's offset must be served in."""
    spec = BY_NAME.get(resource)
    if spec is None or not spec.has_local_times:
        return ()
    return tuple(f.name for f in spec.fields if f.kind is Kind.DATETIME)
