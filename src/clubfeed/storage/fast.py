"""The hot path's statements: rows as the driver returns them, without SQLAlchemy's execution layer.

Building 10,000 Row objects costs about as much as the database takes to hand the
page over, and on a one-record request SQLAlchemy's execute (cache lookup, result
metadata, Row) costs more than the indexed lookup it runs. The feed and the
credential checks need only tuples. Statements are still written once, as SQL text
with named parameters or as Core constructs built at import, and compiled per
dialect by SQLAlchemy; the driver's errors are raised as SQLAlchemy's, with a dead
connection invalidated, exactly as `Connection.execute` would (`storage/outages.py`
tells which mean "unavailable").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import ClauseElement, Connection, Dialect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler

Statement = str | ClauseElement
"""SQL text with `:name` parameters, or a Core statement built once (so that it can be cached)."""


@lru_cache(maxsize=512)
def _compiled(statement: Statement, dialect: Dialect) -> SQLCompiler:
    clause = text(statement) if isinstance(statement, str) else statement
    compiled = clause.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    return compiled


def fetch_tuples(
    conn: Connection, statement: Statement, params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """Run `statement` in `conn`'s transaction (begun if it was not) and return plain tuples."""
    compiled = _compiled(statement, conn.dialect)
    bound = compiled.construct_params(params)
    args: Any = (
        tuple(bound[name] for name in compiled.positiontup or ()) if compiled.positional else bound
    )
    with _driver_cursor(conn, compiled.string, args) as cursor:
        cursor.execute(compiled.string, args)
        return list(cursor.fetchall())


def execute_many(conn: Connection, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Run `sql`, written in the driver's own parameter style, once per row, in the driver's
    loop (SQLite's is C): for thousands of small rows, where SQLAlchemy's per-row
    handling would cost more than the database does."""
    with _driver_cursor(conn, sql, rows) as cursor:
        cursor.executemany(sql, rows)


def execute_binary(conn: Connection, sql: str, params: Mapping[str, Any]) -> None:
    """Run `sql`, in psycopg's own parameter style, with its parameters sent in binary:
    PostgreSQL's bulk statements, whose arrays of thousands of values cost more as text."""
    with _driver_cursor(conn, sql, params) as cursor:
        cursor.execute(sql, params, binary=True)


def copy_between(
    conn: Connection,
    before: Sequence[str],
    copy_sql: str,
    types: Sequence[str],
    rows: Iterable[Sequence[Any]],
    after: Sequence[str],
) -> None:
    """PostgreSQL: run `before`, COPY `rows` in binary (`types` names each column's type),
    then run `after`, all in `conn`'s transaction. psycopg formats COPY rows in C, where
    it builds arrays of parameters value by value in Python."""
    with _driver_cursor(conn, copy_sql, ()) as cursor:
        for sql in before:
            cursor.execute(sql)
        with cursor.copy(copy_sql) as copy:
            copy.set_types(list(types))
            for row in rows:
                copy.write_row(row)
        for sql in after:
            cursor.execute(sql)


@contextmanager
def _driver_cursor(conn: Connection, sql: str, args: Any) -> Iterator[Any]:
    """A DBAPI cursor in `conn`'s transaction; driver errors come out as SQLAlchemy's."""
    if not conn.in_transaction():
        conn.begin()
    dbapi_connection: Any = conn.connection.dbapi_connection
    cursor = dbapi_connection.cursor()
    try:
        yield cursor
    except conn.dialect.loaded_dbapi.Error as exc:
        invalidated = conn.dialect.is_disconnect(exc, dbapi_connection, cursor)
        if invalidated:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            sql,
            args,
            exc,
            conn.dialect.loaded_dbapi.Error,
            hide_parameters=True,
            connection_invalidated=invalidated,
            dialect=conn.dialect,
        ) from exc
    finally:
        cursor.close()


def fetch_first(
    conn: Connection, statement: Statement, params: dict[str, Any]
) -> tuple[Any, ...] | None:
    """The first row of `statement` as a plain tuple, or None."""
    rows = fetch_tuples(conn, statement, params)
    return rows[0] if rows else None
