"""Passing a list of ids to one statement, the fast way on each database.

PostgreSQL takes an array (`= ANY(:ids)`); SQLite takes a JSON array it unpacks
with `json_each`, which has no bound-parameter limit.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection


def in_ids(conn: Connection, column: str = "id", param: str = "ids") -> str:
    """SQL that is true when `column` is one of the ids bound as `param`."""
    if conn.dialect.name == "sqlite":
        return f"{column} IN (SELECT value FROM json_each(:{param}))"
    return f"{column} = ANY(:{param})"


def ids_value(conn: Connection, ids: list[str]) -> object:
    """The value to bind for `in_ids`'s parameter."""
    return json.dumps(ids) if conn.dialect.name == "sqlite" else ids
