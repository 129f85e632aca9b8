"""The source database, read-only: its clock, its open transactions, and keyset reads.

Each mapping query is wrapped as a derived table (`SELECT * FROM (query) AS q …`), which
PostgreSQL, MariaDB and SQLite all merge into the outer query, so the key and modified
columns' own indexes serve the keyset reads. Every statement runs on its own
(autocommit): a read sees everything committed before it began, and holds no snapshot
open between polls.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pymysql.constants import FIELD_TYPE
from pymysql.converters import conversions, convert_datetime
from sqlalchemy import Connection, Engine, bindparam, create_engine, event, text
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError

from clubfeed.sources.mapping import ResourceMapping
from clubfeed.storage.outages import CommitFailed

Dialect = Literal["postgresql", "mysql", "sqlite"]

# Other sessions' open transactions in this database, and the clock they are measured on.
_PG_GUARD = """
SELECT extract(epoch FROM clock_timestamp())::float8,
       extract(epoch FROM (
         SELECT min(xact_start) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()
            AND backend_type = 'client backend' AND xact_start IS NOT NULL))::float8
"""
_PG_CAN_SEE = """
SELECT rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
  FROM pg_roles WHERE rolname = current_user
"""
# InnoDB shows trx_started in the server's system zone whatever the session's, and to the
# whole second (rounded down, which only makes the guard more careful).
_MYSQL_GUARD = """
SELECT UNIX_TIMESTAMP(NOW(6)),
       UNIX_TIMESTAMP(CONVERT_TZ(MIN(trx_started), 'SYSTEM', @@session.time_zone))
  FROM information_schema.innodb_trx WHERE trx_mysql_thread_id <> CONNECTION_ID()
"""


@dataclass(frozen=True)
class Guard:
    """The source's clock and the start of its oldest other open transaction, in epoch seconds.

    `visible` is False where the account cannot see other sessions' transactions
    (then `oldest_open_s` covers only what it can see, if anything).
    """

    now_s: float
    oldest_open_s: float | None
    visible: bool


@dataclass(frozen=True)
class Rows:
    """One read: column names, rows as tuples, and which columns hold MySQL's TINYINT(1)."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    flags: frozenset[str] = frozenset()


def _mysql_datetime(text: str) -> Any:
    """A DATETIME or TIMESTAMP value as PyMySQL reads it, in a twentieth of its time.

    PyMySQL parses each with a regular expression in Python, the largest part of reading a
    page of visits; `fromisoformat` reads the shape MySQL sends (`YYYY-MM-DD hh:mm:ss`
    and a fraction) in C. Anything else (a zero date, say) is left to PyMySQL, which
    returns what it cannot read as the string itself.
    """
    if len(text) >= 19:
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    return convert_datetime(text)


_MYSQL_CONVERSIONS = {
    **conversions,
    FIELD_TYPE.DATETIME: _mysql_datetime,
    FIELD_TYPE.TIMESTAMP: _mysql_datetime,
}


def _dialect(url: URL) -> Dialect:
    backend = url.get_backend_name()
    if backend == "postgresql":
        return "postgresql"
    if backend in ("mysql", "mariadb"):
        return "mysql"
    if backend == "sqlite":
        return "sqlite"
    raise ValueError(f"unsupported source database {backend!r}")


# The note every error of a source engine carries, so a message can say which database failed.
_FROM_SOURCE = "raised by the source database"


def describe_failure(exc: BaseException) -> str:
    """A failure as one line that is safe to show: which database failed and the driver's
    first line, never SQL or values."""
    from clubfeed.sources.convert import ColumnsProblem

    if isinstance(exc, ColumnsProblem):
        return str(exc)
    cause: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc
    if isinstance(exc, CommitFailed) and exc.__cause__ is not None:
        cause = exc.__cause__
    lines = str(cause).strip().splitlines()
    first = lines[0] if lines else type(cause).__name__
    if _FROM_SOURCE in getattr(exc, "__notes__", ()):
        return f"the source failed: {first}"
    return f"clubfeed's database failed: {first}"


def _note_source_errors(engine: Engine) -> None:
    @event.listens_for(engine, "handle_error")
    def _note(context: ExceptionContext) -> None:
        if context.sqlalchemy_exception is not None:
            context.sqlalchemy_exception.add_note(_FROM_SOURCE)


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL may hold a secret anywhere: show none of it
        return "(an unparsable URL)"


def connect(url: str) -> SourceDB:
    """A read-only engine on the source; ValueError for a URL it cannot use."""
    parsed = make_url(url)
    dialect = _dialect(parsed)
    options: dict[str, Any] = {
        "hide_parameters": True,
        "pool_size": 2,
        "max_overflow": 2,
        "pool_pre_ping": True,
        "isolation_level": "AUTOCOMMIT",
    }
    if dialect == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        connect_args = {"options": "-c default_transaction_read_only=on", "connect_timeout": 5}
        engine = create_engine(parsed, connect_args=connect_args, **options)
    elif dialect == "mysql":
        if parsed.drivername in ("mysql", "mariadb"):
            parsed = parsed.set(drivername="mysql+pymysql")
        connect_args = {"connect_timeout": 5, "charset": "utf8mb4", "conv": _MYSQL_CONVERSIONS}
        engine = create_engine(parsed, connect_args=connect_args, **options)

        @event.listens_for(engine, "connect")
        def _session(dbapi_connection: Any, _record: Any) -> None:
            # TIMESTAMP columns come out in UTC (DATETIME ones as stored), and every
            # statement is a read-only transaction.
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET time_zone = '+00:00'")
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
    else:
        path = parsed.database
        if not path or path == ":memory:":
            raise ValueError("a SQLite source is a file: sqlite:///path/to/file.db")
        read_only = parsed.set(database=f"file:{path}?mode=ro", query={"uri": "true"})
        del options["isolation_level"]
        engine = create_engine(read_only, **options)

        @event.listens_for(engine, "connect")
        def _autocommit(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

    _note_source_errors(engine)
    return SourceDB(engine, dialect)


class SourceDB:
    """Reads of one source database; every method opens and returns its own connection."""

    def __init__(self, engine: Engine, dialect: Dialect) -> None:
        self.engine = engine
        self.dialect: Dialect = dialect
        self._visible: bool | None = None

    def close(self) -> None:
        self.engine.dispose()

    def quote(self, name: str) -> str:
        quoted: str = self.engine.dialect.identifier_preparer.quote_identifier(name)
        return quoted

    def can_see_transactions(self) -> bool:
        """Whether the account sees every other session's open transaction (asked once)."""
        if self._visible is None:
            self._visible = self._ask_visibility()
        return self._visible

    def _ask_visibility(self) -> bool:
        if self.dialect == "sqlite":
            return False
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                return bool(conn.execute(text(_PG_CAN_SEE)).scalar())
            try:
                conn.execute(text("SELECT 1 FROM information_schema.innodb_trx LIMIT 1")).all()
            except DBAPIError:
                return False  # 1227: the PROCESS privilege is missing
            return True

    def guard(self) -> Guard:
        """The source's clock now, and its oldest other open transaction's start."""
        visible = self.can_see_transactions()
        if self.dialect == "sqlite":
            return Guard(time.time(), None, False)
        sql = _PG_GUARD if self.dialect == "postgresql" else _MYSQL_GUARD
        with self.engine.connect() as conn:
            if self.dialect == "mysql" and not visible:
                now = conn.execute(text("SELECT UNIX_TIMESTAMP(NOW(6))")).scalar_one()
                return Guard(float(now), None, False)
            now, oldest = conn.execute(text(sql)).one()
        return Guard(float(now), None if oldest is None else float(oldest), visible)

    def _read(self, conn: Connection, sql: str, params: dict[str, Any]) -> Rows:
        statement = text(sql)
        if "keys" in params:
            statement = statement.bindparams(bindparam("keys", expanding=True))
        result = conn.execute(statement, params)
        flags: frozenset[str] = frozenset()
        if self.dialect == "mysql":
            description = result.cursor.description or ()
            # FIELD_TYPE.TINY with a display width of 1: how MySQL spells BOOLEAN.
            flags = frozenset(d[0] for d in description if d[1] == 1 and d[3] == 1)
        # The driver's own tuples: a page of 10,000 rows need not become Row objects first.
        return Rows(tuple(result.keys()), list(result.cursor.fetchall()), flags)

    def _wrapped(self, mapping: ResourceMapping) -> str:
        return f"SELECT * FROM ({mapping.query}) AS q"

    def _column(self, name: str) -> str:
        return f"q.{self.quote(name)}"

    def read_changed(
        self,
        mapping: ResourceMapping,
        *,
        above: Any,
        after: tuple[Any, Any] | None,
        limit: int,
    ) -> Rows:
        """Rows modified after `above` (all if None), in (modified, key) order, from past `after`."""
        m, k = self._column(mapping.modified), self._column(mapping.key)
        where = [f"{m} IS NOT NULL"]
        params: dict[str, Any] = {"limit": limit}
        if above is not None:
            where.append(f"{m} > :above")
            params["above"] = above
        if after is not None:
            where.append(f"{m} >= :am AND ({m} > :am OR {k} > :ak)")
            params["am"], params["ak"] = after
        sql = f"{self._wrapped(mapping)} WHERE {' AND '.join(where)} ORDER BY {m}, {k} LIMIT :limit"
        with self.engine.connect() as conn:
            return self._read(conn, sql, params)

    def read_by_key(self, mapping: ResourceMapping, *, after: Any, limit: int) -> Rows:
        """Every row in key order from past `after` (the start if None): backfill and reconcile."""
        k = self._column(mapping.key)
        params: dict[str, Any] = {"limit": limit}
        where = ""
        if after is not None:
            where = f" WHERE {k} > :after"
            params["after"] = after
        sql = f"{self._wrapped(mapping)}{where} ORDER BY {k} LIMIT :limit"
        with self.engine.connect() as conn:
            return self._read(conn, sql, params)

    def read_keys(self, mapping: ResourceMapping, keys: Sequence[Any]) -> Rows:
        """The rows with these keys (a referenced record fetched, a deletion confirmed)."""
        if not keys:
            return Rows((), [])
        sql = f"{self._wrapped(mapping)} WHERE {self._column(mapping.key)} IN :keys"
        with self.engine.connect() as conn:
            return self._read(conn, sql, {"keys": list(keys)})

    def sample(self, mapping: ResourceMapping, limit: int) -> Rows:
        """A few rows, for `source check`."""
        with self.engine.connect() as conn:
            return self._read(conn, f"{self._wrapped(mapping)} LIMIT :limit", {"limit": limit})

    def count(self, mapping: ResourceMapping) -> int:
        with self.engine.connect() as conn:
            counted = conn.execute(text(f"SELECT count(*) FROM ({mapping.query}) AS q")).scalar()
        return int(counted or 0)

    def max_modified(self, mapping: ResourceMapping) -> Any:
        """The greatest modified value the source has committed now (None for no rows)."""
        sql = f"SELECT max({self._column(mapping.modified)}) FROM ({mapping.query}) AS q"
        with self.engine.connect() as conn:
            return conn.execute(text(sql)).scalar()

    def tenant_names(self, query: str) -> list[tuple[Any, Any]]:
        """(tenant, display name) pairs from `create_missing.name_query`."""
        with self.engine.connect() as conn:
            return [(row[0], row[1]) for row in conn.execute(text(query))]
