"""The POS database the source benchmark reads: clubs, members and visits, on MariaDB or PostgreSQL.

The shape is the README's example (and the source tests'): integer keys, UTC stamps in
`updated_at` indexed with the key, members with soft deletes and guardians, and visit
times as naive local time at the club. The rows are generated from a seed and loaded
with the database's own bulk path (COPY; multi-row INSERTs from PyMySQL), so loading
the million takes seconds, not the benchmark's time.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pymysql
from sqlalchemy.engine import make_url

from bench import databases

SOURCES = ("mariadb", "postgresql")
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306"
CLUBS = 20
ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
# Visits fall in a summer with no DST change, so every naive local time names one instant.
FIRST_VISIT = datetime(2026, 6, 1, 6, 0)
VISIT_SPAN_S = 100 * 86_400
_CHUNK = 10_000

_TYPES = {
    "postgresql": {"stamp": "TIMESTAMP(6)", "flag": "BOOLEAN", "text": "TEXT"},
    "mariadb": {"stamp": "DATETIME(6)", "flag": "TINYINT(1)", "text": "VARCHAR(200)"},
}


def _schema(kind: str) -> list[str]:
    t = _TYPES[kind]
    stamp, flag, txt = t["stamp"], t["flag"], t["text"]
    return [
        f"""CREATE TABLE clubs (club_id INTEGER PRIMARY KEY, club_name {txt} NOT NULL,
            tz {txt} NOT NULL, updated_at {stamp} NOT NULL)""",
        f"""CREATE TABLE members (id INTEGER PRIMARY KEY, email {txt}, first_name {txt} NOT NULL,
            last_name {txt} NOT NULL, is_minor {flag} NOT NULL, guardian_id INTEGER,
            updated_at {stamp} NOT NULL, deleted_at {stamp})""",
        f"""CREATE TABLE visits (visit_id INTEGER PRIMARY KEY, member_id INTEGER NOT NULL,
            club_id INTEGER NOT NULL, visited_at {stamp} NOT NULL, updated_at {stamp} NOT NULL)""",
        "CREATE INDEX ix_clubs_updated ON clubs (updated_at, club_id)",
        "CREATE INDEX ix_members_updated ON members (updated_at, id)",
        "CREATE INDEX ix_visits_updated ON visits (updated_at, visit_id)",
    ]


MAPPING = """
name: {name}
source:
  url: {url}
  poll_interval: 1s
  clock_margin: 1s
business:
  id: {business_id}
resources:
  locations:
    query: SELECT club_id AS id, club_name AS name, tz AS timezone, updated_at FROM clubs
    modified: updated_at
  users:
    query: >-
      SELECT id, email, first_name, last_name, is_minor AS is_child, guardian_id AS parent_id,
      updated_at, deleted_at FROM members
    modified: updated_at
    deletes: {{column: deleted_at}}
  checkins:
    query: >-
      SELECT visit_id AS id, member_id AS user_id, club_id AS location_id,
      visited_at AS checked_in_at, updated_at FROM visits
    modified: updated_at
    naive_datetimes: location
    deletes: {{reconcile: 24h}}
"""
"""The README's example mapping, with the defaults a vendor gets (1 s poll, 1 s margin)."""


@dataclass(frozen=True)
class Sizes:
    visits: int

    @property
    def members(self) -> int:
        return max(100, self.visits // 20)

    @property
    def records(self) -> int:
        return CLUBS + self.members + self.visits


def zone_of(club_id: int) -> str:
    return ZONES[club_id % len(ZONES)]


def _utc(local: datetime, club_id: int) -> datetime:
    return local.replace(tzinfo=ZoneInfo(zone_of(club_id))).astimezone(UTC).replace(tzinfo=None)


def clubs() -> list[tuple[Any, ...]]:
    return [
        (i, f"Club {i}", zone_of(i), FIRST_VISIT + timedelta(seconds=i))
        for i in range(1, CLUBS + 1)
    ]


def members(sizes: Sizes, seed: int) -> Iterator[tuple[Any, ...]]:
    """Every tenth member a minor whose guardian is the member before."""
    rng = random.Random(seed)
    for i in range(1, sizes.members + 1):
        minor = i % 10 == 0
        stamp = FIRST_VISIT + timedelta(seconds=rng.randrange(VISIT_SPAN_S))
        yield (i, f"member{i}@example.com", f"First{i}", f"Last{i}", minor,
               i - 1 if minor else None, stamp, None)  # fmt: skip


def visits(sizes: Sizes, seed: int) -> Iterator[tuple[Any, ...]]:
    """Visits in key order; each stamped when its club's app wrote it, a little after."""
    rng = random.Random(seed + 1)
    for i in range(1, sizes.visits + 1):
        club = rng.randrange(1, CLUBS + 1)
        local = FIRST_VISIT + timedelta(seconds=rng.randrange(VISIT_SPAN_S), microseconds=i % 997)
        stamp = _utc(local, club) + timedelta(seconds=rng.randrange(1, 120))
        yield (i, rng.randrange(1, sizes.members + 1), club, local, stamp)


class SourceDatabase:
    """A fresh POS database on MariaDB or PostgreSQL, dropped by `drop()`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = f"clubfeed_bench_pos_{os.getpid()}"
        if kind == "postgresql":
            base = databases.pg_base()
            self.url = base.set(database=self.name).render_as_string(hide_password=False)
        else:
            self.url = make_url(MARIADB_URL).set(database=self.name).render_as_string(False)
        self.drop()
        self._admin(
            "CREATE DATABASE {name}"
            + (" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" if kind == "mariadb" else "")
        )
        with self.connect() as conn, conn.cursor() as cursor:
            for statement in _schema(kind):
                cursor.execute(statement)
            conn.commit()

    def _admin(self, statement: str) -> None:
        if self.kind == "postgresql":
            admin = databases.pg_base().set(database="postgres")
            with psycopg.connect(databases.libpq_url(admin.render_as_string(False))) as conn:
                conn.autocommit = True
                conn.execute(statement.format(name=f'"{self.name}"'))
            return
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root")
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement.format(name=f"`{self.name}`"))
        finally:
            conn.close()

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A plain driver connection (the POS app's own), not through clubfeed."""
        conn: Any
        if self.kind == "postgresql":
            conn = psycopg.connect(databases.libpq_url(self.url))
        else:
            conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", database=self.name)
        try:
            yield conn
        finally:
            conn.close()

    def load(self, sizes: Sizes, seed: int) -> None:
        with self.connect() as conn:
            for table, rows in (
                ("clubs", iter(clubs())),
                ("members", members(sizes, seed)),
                ("visits", visits(sizes, seed)),
            ):
                self._bulk(conn, table, rows)
            conn.commit()
            with conn.cursor() as cursor:
                cursor.execute("ANALYZE" if self.kind == "postgresql" else "ANALYZE TABLE visits")

    def _bulk(self, conn: Any, table: str, rows: Iterator[tuple[Any, ...]]) -> None:
        if self.kind == "postgresql":
            with conn.cursor() as cursor, cursor.copy(f"COPY {table} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        with conn.cursor() as cursor:
            chunk: list[tuple[Any, ...]] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) == _CHUNK:
                    self._insert(cursor, table, chunk)
                    chunk = []
            if chunk:
                self._insert(cursor, table, chunk)

    @staticmethod
    def _insert(cursor: Any, table: str, chunk: list[tuple[Any, ...]]) -> None:
        marks = ", ".join(["%s"] * len(chunk[0]))
        # PyMySQL sends an executemany of one INSERT … VALUES as multi-row INSERTs.
        cursor.executemany(f"INSERT INTO {table} VALUES ({marks})", chunk)

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> int:
        """One statement in its own transaction; the rows it changed."""
        with self.connect() as conn, conn.cursor() as cursor:
            cursor.execute(statement, params)
            conn.commit()
            changed: int = cursor.rowcount
            return changed

    def count(self, table: str) -> int:
        with self.connect() as conn, conn.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table}")
            found = cursor.fetchone()
            return int(found[0])

    def drop(self) -> None:
        force = " WITH (FORCE)" if self.kind == "postgresql" else ""
        self._admin("DROP DATABASE IF EXISTS {name}" + force)
