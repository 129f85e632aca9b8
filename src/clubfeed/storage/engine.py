"""Database engines for SQLite and PostgreSQL, and the transactions clubfeed uses.

Writes on SQLite take the write lock up front (`BEGIN IMMEDIATE`) so that two
writers never deadlock upgrading a read lock; WAL lets readers run beside them.

Engines never put SQL parameters into errors (`hide_parameters`), so a traceback in a
log holds statements but no values. `timeout_s` bounds every wait on the database
that is not a query: for a pooled connection, for a lock another writer holds
(SQLite's busy timeout, PostgreSQL's lock_timeout), and for a PostgreSQL connection
to open; past it the caller gets an error it can turn into 503.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import Pool

from clubfeed.settings import Settings
from clubfeed.storage.outages import CommitFailed

DEFAULT_TIMEOUT_S = Settings.db_timeout_s
# A SQLite engine's writers queue on one lock of this process before they ask for SQLite's
# write lock. SQLite's busy handler retries on a back-off of up to 100 ms, so with many
# writers a waiting one slept past several others' whole transactions: a one-record PUT's
# p99 at 64 connections was ~1 s, and ~0.25 s once they queue here. Other processes
# sharing the file still meet at SQLite's lock, under its busy timeout.
_SQLITE_WRITERS: WeakKeyDictionary[Engine, tuple[threading.Lock, float]] = WeakKeyDictionary()
# libpq's connect_timeout is whole seconds, and it treats values under 2 as 2.
_MIN_CONNECT_TIMEOUT_S = 2


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    poolclass: type[Pool] | None = None,
) -> Engine:
    """An engine for `url` (`sqlite:///file.db` or `postgresql+psycopg://…`).

    `poolclass` None is SQLAlchemy's choice: a QueuePool for PostgreSQL and SQLite files.
    """
    parsed = make_url(url)
    options: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": pool_size,
        "pool_timeout": timeout_s,
        "hide_parameters": True,
        "poolclass": poolclass,
    }
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": timeout_s}, **options)
        _configure_sqlite(engine, busy_timeout_ms=round(timeout_s * 1000))
        _SQLITE_WRITERS[engine] = (threading.Lock(), timeout_s)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(
            f"unsupported database URL {url!r}: use sqlite:/// or postgresql+psycopg://"
        )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    # pre-ping: a connection that died with a restarted server is replaced at checkout,
    # so the first request after PostgreSQL returns already succeeds. lock_timeout is
    # SQLite's busy timeout: a writer waits that long for a row another writer holds.
    connect_args = {
        "connect_timeout": max(_MIN_CONNECT_TIMEOUT_S, round(timeout_s)),
        "options": f"-c lock_timeout={round(timeout_s * 1000)}",
    }
    return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args, **options)


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int) -> None:
    """Let clubfeed, not the driver, decide when transactions begin and how."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
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
def _one_sqlite_writer(engine: Engine) -> Iterator[None]:
    """Hold this process's write turn on a SQLite engine; PoolTimeout (503) past its timeout."""
    found = _SQLITE_WRITERS.get(engine)
    if found is None:
        yield
        return
    lock, timeout_s = found
    if not lock.acquire(timeout=timeout_s):
        raise PoolTimeout(f"another write of this process held the database for {timeout_s} s")
    try:
        yield
    finally:
        lock.release()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction, committed on success, rolled back on error.

    An error before the commit wrote nothing; one from the commit itself is raised as
    `CommitFailed`, since the database may have written the transaction and lost the
    connection before saying so.
    """
    with _one_sqlite_writer(engine), engine.connect() as conn:
        if is_sqlite(engine):
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        committing = False
        try:
            with conn.begin():
                yield conn
                committing = True
        except DBAPIError as exc:
            if committing:
                raise CommitFailed("the database failed during the commit") from exc
            raise


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection for reads; whatever it began is rolled back when it is returned."""
    with engine.connect() as conn:
        yield conn
