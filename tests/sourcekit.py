"""The vendor's side of the source tests: a POS database on each dialect, and its app.

Each test gets its own source database (a SQLite file, or a database created on the
machine's PostgreSQL or MariaDB), with a small POS schema: clubs, members (soft
deletes), visits (hard deletes) and sale lines, and a tenant column for multi-tenant
tests. `Pos` writes the way a POS app does: it stamps `updated_at` from its own
clock when it begins, and may hold its transaction open before committing.

`expected()` maps the source's rows to the records clubfeed should serve, computed
here, independently of clubfeed's converter.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import DEFAULT_PG_URL

SOURCES = ("sqlite", "postgresql", "mariadb")
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306"

_TYPES = {
    "sqlite": {"stamp": "TEXT", "bool": "INTEGER", "money": "TEXT", "text": "TEXT"},
    "postgresql": {
        "stamp": "TIMESTAMP(6)",
        "bool": "BOOLEAN",
        "money": "NUMERIC(10,2)",
        "text": "TEXT",
    },
    "mariadb": {
        "stamp": "DATETIME(6)",
        "bool": "TINYINT(1)",
        "money": "DECIMAL(10,2)",
        "text": "VARCHAR(200)",
    },
}


def _schema(kind: str) -> list[str]:
    t = _TYPES[kind]
    stamp, flag, money, txt = t["stamp"], t["bool"], t["money"], t["text"]
    return [
        f"""CREATE TABLE clubs (club_id INTEGER PRIMARY KEY, tenant_id {txt} NOT NULL,
            club_name {txt} NOT NULL, tz {txt} NOT NULL, updated_at {stamp} NOT NULL)""",
        f"""CREATE TABLE members (id INTEGER PRIMARY KEY, tenant_id {txt} NOT NULL,
            email {txt}, first_name {txt} NOT NULL, last_name {txt} NOT NULL,
            is_minor {flag} NOT NULL, guardian_id INTEGER, tier {txt},
            updated_at {stamp} NOT NULL, deleted_at {stamp})""",
        f"""CREATE TABLE visits (visit_id INTEGER PRIMARY KEY, tenant_id {txt} NOT NULL,
            member_id INTEGER NOT NULL, club_id INTEGER NOT NULL, visited_at {stamp} NOT NULL,
            updated_at {stamp} NOT NULL)""",
        f"""CREATE TABLE sale_lines (line_id INTEGER PRIMARY KEY, tenant_id {txt} NOT NULL,
            receipt {txt} NOT NULL, member_id INTEGER, club_id INTEGER NOT NULL,
            price {money} NOT NULL, sold_at {stamp} NOT NULL, updated_at {stamp} NOT NULL)""",
        f"CREATE TABLE tenants (tenant_id {txt} PRIMARY KEY, display_name {txt} NOT NULL)",
        "CREATE INDEX ix_clubs_updated ON clubs (updated_at, club_id)",
        "CREATE INDEX ix_members_updated ON members (updated_at, id)",
        "CREATE INDEX ix_visits_updated ON visits (updated_at, visit_id)",
        "CREATE INDEX ix_sale_lines_updated ON sale_lines (updated_at, line_id)",
    ]


class SourceDatabase:
    """A fresh POS database: `url` for the mapping file, `engine` for the POS app."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.name = f"pos_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        if kind == "sqlite":
            self.url = f"sqlite:///{tmp_path / 'pos.db'}"
            self.engine = create_engine(self.url, connect_args={"timeout": 30})
            self._admin: Engine | None = None
        else:
            base = (
                make_url(os.environ.get("CLUBFEED_TEST_PG_URL") or DEFAULT_PG_URL)
                if kind == "postgresql"
                else make_url(MARIADB_URL)
            )
            if base.drivername == "postgresql":
                base = base.set(drivername="postgresql+psycopg")
            self._admin = create_engine(base, isolation_level="AUTOCOMMIT")
            create = (
                f'CREATE DATABASE "{self.name}"'
                if kind == "postgresql"
                else f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            )
            with self._admin.connect() as conn:
                conn.execute(text(create))
            self.url = base.set(database=self.name).render_as_string(hide_password=False)
            self.engine = create_engine(self.url, pool_size=8)
        with self.engine.begin() as conn:
            for statement in _schema(kind):
                conn.execute(text(statement))

    def drop(self) -> None:
        self.engine.dispose()
        if self._admin is None:
            return
        with self._admin.connect() as conn:
            if self.kind == "postgresql":
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{self.name}`"))
        self._admin.dispose()

    def stamp(self, value: datetime) -> Any:
        """A time as this database's stamp column holds it (SQLite: ISO text)."""
        naive = value.astimezone(UTC).replace(tzinfo=None)
        return naive.isoformat(sep=" ") if self.kind == "sqlite" else naive

    def rows(self, sql: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(sql))]


class Pos:
    """The POS app: every write stamps `updated_at` from its clock when it begins."""

    def __init__(self, source: SourceDatabase, tenant: str = "acme") -> None:
        self.source = source
        self.tenant = tenant

    def now(self, *, whole_second: bool = False) -> Any:
        moment = datetime.now(UTC)
        if whole_second:
            moment = moment.replace(microsecond=0)
        return self.source.stamp(moment)

    @contextmanager
    def transaction(self, *, hold_s: float = 0.0) -> Iterator[Connection]:
        """A transaction that commits `hold_s` after its work (stamped at its start)."""
        with self.source.engine.begin() as conn:
            yield conn
            if hold_s:
                time.sleep(hold_s)

    def club(self, conn: Connection, club_id: int, name: str, tz: str, at: Any) -> None:
        conn.execute(
            text("INSERT INTO clubs VALUES (:id, :t, :name, :tz, :at)"),
            {"id": club_id, "t": self.tenant, "name": name, "tz": tz, "at": at},
        )

    def member(
        self,
        conn: Connection,
        member_id: int,
        at: Any,
        *,
        minor: bool = False,
        guardian: int | None = None,
        tier: str | None = None,
    ) -> None:
        conn.execute(
            text(
                "INSERT INTO members VALUES (:id, :t, :email, :first, :last, :minor, :guardian,"
                " :tier, :at, NULL)"
            ),
            {
                "id": member_id,
                "t": self.tenant,
                "email": f"m{member_id}@example.com",
                "first": f"First{member_id}",
                "last": "Ünïcode ✓",
                "minor": minor,
                "guardian": guardian,
                "tier": tier,
                "at": at,
            },
        )

    def visit(
        self, conn: Connection, visit_id: int, member_id: int, club_id: int, visited: Any, at: Any
    ) -> None:
        conn.execute(
            text("INSERT INTO visits VALUES (:id, :t, :m, :c, :v, :at)"),
            {
                "id": visit_id,
                "t": self.tenant,
                "m": member_id,
                "c": club_id,
                "v": visited,
                "at": at,
            },
        )

    def sale(
        self,
        conn: Connection,
        line_id: int,
        member_id: int | None,
        club_id: int,
        price: str,
        at: Any,
    ) -> None:
        conn.execute(
            text("INSERT INTO sale_lines VALUES (:id, :t, :r, :m, :c, :p, :s, :at)"),
            {
                "id": line_id,
                "t": self.tenant,
                "r": f"R{line_id // 3}",
                "m": member_id,
                "c": club_id,
                "p": price if self.source.kind == "sqlite" else Decimal(price),
                "s": at,
                "at": at,
            },
        )


def mapping_yaml(
    source: SourceDatabase,
    *,
    business: str,
    fixed_lag: str = "3s",
    reconcile: str = "1h",
    batch_size: int = 10_000,
    name: str,
) -> str:
    """The mapping file the README shows, pointed at this source (`business` is the section)."""
    extra_tenant = ", tenant_id" if "column" in business else ""
    return f"""
name: {name}
source:
  url: {source.url}
  poll_interval: 0.2s
  clock_margin: 0.5s
  fixed_lag: {fixed_lag}
  batch_size: {batch_size}
business:
{business}
resources:
  locations:
    query: SELECT club_id AS id, club_name AS name, tz AS timezone, updated_at{extra_tenant} FROM clubs
    modified: updated_at
  users:
    query: >-
      SELECT id, email, first_name, last_name, is_minor AS is_child, guardian_id AS parent_id,
      tier, updated_at, deleted_at{extra_tenant} FROM members
    modified: updated_at
    deletes: {{column: deleted_at}}
  checkins:
    query: >-
      SELECT visit_id AS id, member_id AS user_id, club_id AS location_id,
      visited_at AS checked_in_at, updated_at{extra_tenant} FROM visits
    modified: updated_at
    naive_datetimes: location
    deletes: {{reconcile: {reconcile}}}
  sales:
    query: >-
      SELECT line_id AS id, receipt AS sale_id, member_id AS user_id, club_id AS location_id,
      price AS pre_tax_price, sold_at, updated_at{extra_tenant} FROM sale_lines
    modified: updated_at
    naive_datetimes: UTC
"""


def _naive(value: Any) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=None)


def _local(value: Any, zone: str) -> str:
    """A naive source time read in `zone`, as the feed renders event times."""
    return _naive(value).replace(tzinfo=ZoneInfo(zone)).isoformat(timespec="microseconds")


def _utc_at(value: Any, zone: str) -> str:
    """A naive source time read as UTC, rendered in the offset of the record's location."""
    instant = _naive(value).replace(tzinfo=UTC)
    return instant.astimezone(ZoneInfo(zone)).isoformat(timespec="microseconds")


def expected(
    source: SourceDatabase, tenant: str | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """Resource → id → the fields clubfeed should serve for the source's live rows."""
    where = f" WHERE tenant_id = '{tenant}'" if tenant is not None else ""
    clubs = source.rows(f"SELECT * FROM clubs{where}")
    zones = {c["club_id"]: c["tz"] for c in clubs}
    out: dict[str, dict[str, dict[str, Any]]] = {
        "locations": {
            str(c["club_id"]): {"name": c["club_name"], "timezone": c["tz"]} for c in clubs
        },
        "users": {},
        "checkins": {},
        "sales": {},
    }
    for m in source.rows(f"SELECT * FROM members{where}"):
        if m["deleted_at"] is not None:
            continue
        out["users"][str(m["id"])] = {
            "email": m["email"],
            "first_name": m["first_name"],
            "last_name": m["last_name"],
            "is_child": bool(m["is_minor"]),
            "parent_id": None if m["guardian_id"] is None else str(m["guardian_id"]),
            "extra": {"tier": m["tier"]},
        }
    for v in source.rows(f"SELECT * FROM visits{where}"):
        out["checkins"][str(v["visit_id"])] = {
            "user_id": str(v["member_id"]),
            "location_id": str(v["club_id"]),
            "checked_in_at": _local(v["visited_at"], zones[v["club_id"]]),
        }
    for s in source.rows(f"SELECT * FROM sale_lines{where}"):
        out["sales"][str(s["line_id"])] = {
            "sale_id": s["receipt"],
            "user_id": None if s["member_id"] is None else str(s["member_id"]),
            "location_id": str(s["club_id"]),
            "pre_tax_price": format(Decimal(str(s["price"])), "f"),
            "sold_at": _utc_at(s["sold_at"], zones[s["club_id"]]),
        }
    return out


def served(
    records: list[dict[str, Any]], like: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The API's records cut down to the fields `expected` states, by id."""
    fields = {name for record in like.values() for name in record}
    return {r["id"]: {k: v for k, v in r.items() if k in fields} for r in records}
