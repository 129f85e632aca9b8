"""Database engines for SQLite and PostgreSQL, and the transactions clubfeed uses.

Writes on SQLite take the write lock up front (`BEGIN IMMEDIATE`) so that two
writers never deadlock upgrading a read lock; WAL lets readers run beside them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import Pool

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str, *, pool_size: int = 10, poolclass: type[Pool] | None = None) -> Engine:
    """An engine for `url` (`sqlite:///file.db` or `postgresql+psycopg://…`).

    `poolclass` None is SQLAlchemy's choice: a QueuePool for PostgreSQL and SQLite files.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=pool_size,
            poolclass=poolclass,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(
            f"unsupported database URL {url!r}: use sqlite:/// or postgresql+psycopg://"
        )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        poolclass=poolclass,
    )


def _configure_sqlite(engine: Engine) -> None:
    """Let clubfeed, not the driver, decide when transactions begin and how."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def is_sqlite(conn_or_engine: Connection | Engine) -> bool:
    return conn_or_engine.dialect.name == "sqlite"


def dialect_insert(conn: Connection) -> Callable[[Table], sqlite.Insert | postgresql.Insert]:
    """The INSERT construct of `conn`'s dialect, which has ON CONFLICT on both databases."""
    return sqlite.insert if is_sqlite(conn) else postgresql.insert


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction, committed on success, rolled back on error."""
    with engine.connect() as conn:
        if is_sqlite(engine):
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection for reads; whatever it began is rolled back when it is returned."""
    with engine.connect() as conn:
        yield conn
