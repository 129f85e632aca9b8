"""The hot path's escape hatch: rows as the driver returns them, without SQLAlchemy Row objects.

Building 10,000 Row objects costs about as much as the database takes to hand the
page over; the feed needs only the tuples. Statements are still written once, as
`text()` with named parameters, and compiled per dialect by SQLAlchemy.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Dialect, text
from sqlalchemy.sql.compiler import SQLCompiler


@lru_cache(maxsize=512)
def _compiled(sql: str, dialect: Dialect) -> SQLCompiler:
    return text(sql).compile(dialect=dialect)


def fetch_tuples(conn: Connection, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run `sql` in `conn`'s transaction and return plain tuples."""
    compiled = _compiled(sql, conn.dialect)
    bound = compiled.construct_params(params)
    args: Any = (
        tuple(bound[name] for name in compiled.positiontup or ()) if compiled.positional else bound
    )
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(compiled.string, args)
        return list(cursor.fetchall())
    finally:
        cursor.close()
