"""The floor: the database building the same page's JSON itself, fetched by a plain client.

Field for field the records clubfeed serves, times formatted by the database:
`checked_in_at` in its location's offset at that instant (in UTC where that offset
is not a whole minute), created_at and modified_at in UTC, all with microseconds. PostgreSQL converts with its own time
zone rules (`AT TIME ZONE`). SQLite has no time zone database, so it joins a small
table of each location's offset spans over the data's year, built here from
zoneinfo; `run` checks both baselines against clubfeed's pages record by record.
"""

from __future__ import annotations

import sqlite3
import time
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from bench import dataset
from bench.databases import libpq_url, sqlite_path

_COLUMNS = (
    "business_id, change_seq, id, checked_in_at, location_id, membership_id, user_id, extra, "
    "created_at, modified_at"
)
_PG_TS = "(timestamp '1970-01-01' + {0} * interval '1 microsecond')"
_PG_UTC = "to_char(" + _PG_TS + ", 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'"

_PG_RANGE = f"""
    SELECT {_COLUMNS} FROM checkins
    WHERE business_id = %(b)s AND change_seq > %(after)s AND change_seq <= %(hi)s
      AND deleted_at IS NULL
    ORDER BY change_seq LIMIT %(limit)s
"""

PG_PAGE = f"""
SELECT json_agg(json_build_object(
    'id', p.id,
    'checked_in_at', to_char(r.local, 'YYYY-MM-DD"T"HH24:MI:SS.US')
        || CASE WHEN r.offset_s < 0 THEN '-' ELSE '+' END
        || to_char(abs(r.offset_s) / 3600, 'FM00') || ':'
        || to_char(mod(abs(r.offset_s), 3600) / 60, 'FM00'),
    'location_id', p.location_id,
    'membership_id', p.membership_id,
    'user_id', p.user_id,
    'extra', p.extra::json,
    'created_at', {_PG_UTC.format("p.created_at")},
    'modified_at', {_PG_UTC.format("p.modified_at")}
) ORDER BY p.change_seq)::text
FROM ({_PG_RANGE}) AS p
JOIN locations AS l ON l.business_id = p.business_id AND l.id = p.location_id
CROSS JOIN LATERAL (SELECT {_PG_TS.format("p.checked_in_at")} AS utc) AS u
CROSS JOIN LATERAL (
    SELECT (u.utc AT TIME ZONE 'UTC') AT TIME ZONE l.timezone AS local,
           extract(epoch FROM ((u.utc AT TIME ZONE 'UTC') AT TIME ZONE l.timezone) - u.utc)::int
               AS offset_s
) AS t
-- RFC 3339 offsets are whole minutes: one with seconds (local mean time) is shown in UTC.
CROSS JOIN LATERAL (
    SELECT CASE WHEN mod(t.offset_s, 60) = 0 THEN t.local ELSE u.utc END AS local,
           CASE WHEN mod(t.offset_s, 60) = 0 THEN t.offset_s ELSE 0 END AS offset_s
) AS r
"""

# The same records with times left as integer µs: what the database needs to hand the
# page over as JSON at all, shown for reference beside the formatted baseline.
PG_RAW_PAGE = f"""
SELECT json_agg(json_build_object(
    'id', p.id, 'checked_in_at', p.checked_in_at, 'location_id', p.location_id,
    'membership_id', p.membership_id, 'user_id', p.user_id, 'extra', p.extra::json,
    'created_at', p.created_at, 'modified_at', p.modified_at
) ORDER BY p.change_seq)::text
FROM ({_PG_RANGE}) AS p
"""

_SQLITE_UTC = (
    "strftime('%Y-%m-%dT%H:%M:%S', {0} / 1000000, 'unixepoch') "
    "|| printf('.%06d', {0} % 1000000) || '+00:00'"
)

_SQLITE_RANGE = f"""
    SELECT {_COLUMNS} FROM checkins
    WHERE business_id = :b AND change_seq > :after AND change_seq <= :hi AND deleted_at IS NULL
    ORDER BY change_seq LIMIT :limit
"""

# CROSS JOIN keeps the page as SQLite's outer loop, so the array follows change_seq.
SQLITE_PAGE = f"""
SELECT json_group_array(json_object(
    'id', p.id,
    'checked_in_at', strftime('%Y-%m-%dT%H:%M:%S', (p.checked_in_at + z.offset_us) / 1000000,
        'unixepoch') || printf('.%06d', (p.checked_in_at + z.offset_us) % 1000000) || z.offset_text,
    'location_id', p.location_id,
    'membership_id', p.membership_id,
    'user_id', p.user_id,
    'extra', json(p.extra),
    'created_at', {_SQLITE_UTC.format("p.created_at")},
    'modified_at', {_SQLITE_UTC.format("p.modified_at")}
))
FROM ({_SQLITE_RANGE}) AS p
CROSS JOIN temp.zone_spans AS z
WHERE z.location_id = p.location_id AND p.checked_in_at >= z.start_us AND p.checked_in_at < z.end_us
"""

SQLITE_RAW_PAGE = f"""
SELECT json_group_array(json_object(
    'id', p.id, 'checked_in_at', p.checked_in_at, 'location_id', p.location_id,
    'membership_id', p.membership_id, 'user_id', p.user_id, 'extra', json(p.extra),
    'created_at', p.created_at, 'modified_at', p.modified_at
))
FROM ({_SQLITE_RANGE}) AS p
"""


class DatabaseJson(ABC):
    """A plain client asking the database for one page as JSON text."""

    def __init__(self, business_id: int, limit: int) -> None:
        self.business_id = business_id
        self.limit = limit

    def timed_page(self, after: int, hi: int, *, raw: bool = False) -> tuple[float, str]:
        """Seconds from sending the query to holding the JSON text, and the text."""
        started = time.perf_counter()
        page = self.page(after, hi, raw=raw)
        return time.perf_counter() - started, page

    @abstractmethod
    def page(self, after: int, hi: int, *, raw: bool = False) -> str:
        """The page's records as one JSON array; `raw` leaves times as integer µs."""

    @abstractmethod
    def scalar(self, sql: str, params: dict[str, int]) -> int: ...

    @abstractmethod
    def close(self) -> None: ...

    def clock_seq(self) -> int:
        """The business's change clock: the upper bound a first page is read up to."""
        return self.scalar("SELECT seq FROM change_clock WHERE business_id = {b}", {})

    def seq_after(self, records: int) -> int:
        """The change_seq of the `records`-th live check-in: a deep page starts after it."""
        return self.scalar(
            "SELECT change_seq FROM checkins WHERE business_id = {b} AND deleted_at IS NULL "
            "ORDER BY change_seq LIMIT 1 OFFSET {n}",
            {"n": records - 1},
        )


class PostgresJson(DatabaseJson):
    def __init__(self, url: str, business_id: int, limit: int) -> None:
        super().__init__(business_id, limit)
        self.conn = psycopg.connect(libpq_url(url), autocommit=True)

    def page(self, after: int, hi: int, *, raw: bool = False) -> str:
        params = {"b": self.business_id, "after": after, "hi": hi, "limit": self.limit}
        sql = PG_RAW_PAGE if raw else PG_PAGE
        row = self.conn.execute(sql, params, prepare=True).fetchone()
        assert row is not None
        text: str = row[0]
        return text

    def scalar(self, sql: str, params: dict[str, int]) -> int:
        query = sql.format(b="%(b)s", n="%(n)s")
        row = self.conn.execute(query, {"b": self.business_id, **params}).fetchone()
        assert row is not None
        value: int = row[0]
        return value

    def close(self) -> None:
        self.conn.close()


class SqliteJson(DatabaseJson):
    def __init__(self, url: str, business_id: int, limit: int, zones: dict[str, str]) -> None:
        super().__init__(business_id, limit)
        self.conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
        self.conn.execute(
            "CREATE TEMP TABLE zone_spans "
            "(location_id TEXT, start_us INTEGER, end_us INTEGER, offset_us INTEGER, offset_text TEXT)"
        )
        self.conn.executemany(
            "INSERT INTO temp.zone_spans VALUES (?, ?, ?, ?, ?)",
            [
                (location_id, *span)
                for location_id, name in zones.items()
                for span in offset_spans(ZoneInfo(name))
            ],
        )

    def page(self, after: int, hi: int, *, raw: bool = False) -> str:
        params = {"b": self.business_id, "after": after, "hi": hi, "limit": self.limit}
        row = self.conn.execute(SQLITE_RAW_PAGE if raw else SQLITE_PAGE, params).fetchone()
        text: str = row[0]
        return text

    def scalar(self, sql: str, params: dict[str, int]) -> int:
        query = sql.format(b=":b", n=":n")
        value: int = self.conn.execute(query, {"b": self.business_id, **params}).fetchone()[0]
        return value

    def close(self) -> None:
        self.conn.close()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def _offset_at(zone: ZoneInfo, us: int) -> timedelta:
    offset = (_EPOCH + us * _ONE_US).astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _rendered(offset: timedelta) -> tuple[int, str]:
    """The offset a time is shown in, as (µs, "+hh:mm"): UTC when not a whole minute, as clubfeed does."""
    if offset % timedelta(minutes=1):
        return 0, "+00:00"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return offset // _ONE_US, f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def offset_spans(zone: ZoneInfo) -> list[tuple[int, int, int, str]]:
    """(start µs, end µs, offset µs, "+hh:mm") for each stretch of one offset around the data's year.

    Transitions are found hour by hour, then bisected to the microsecond.
    """
    hour = 3_600_000_000
    start = (dataset.YEAR_START - timedelta(days=2) - _EPOCH) // _ONE_US
    end = (dataset.YEAR_START + dataset.YEAR + timedelta(days=2) - _EPOCH) // _ONE_US
    spans: list[tuple[int, int, int, str]] = []
    span_start, current = start, _offset_at(zone, start)
    for at in range(start, end, hour):
        if _offset_at(zone, at + hour) == current:
            continue
        low, high = at, at + hour
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if _offset_at(zone, middle) == current else (low, middle)
        spans.append((span_start, high, *_rendered(current)))
        span_start, current = high, _offset_at(zone, high)
    spans.append((span_start, end, *_rendered(current)))
    return spans
