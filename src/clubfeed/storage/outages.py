"""Which database errors mean "unavailable for now", as opposed to a bug in clubfeed.

A request that meets a database restarting, unreachable, locked or out of connections
should be retried later (the web edge answers 503 with Retry-After); a request that
meets anything else (a syntax error, a missing table, a constraint) found a bug, and
retrying will not help. Drivers blur the line, so it is drawn here once, from what
each driver says: sqlite3 raises OperationalError for syntax errors too, and psycopg
for a key too long for its index.

SQLAlchemyError
 ├── TimeoutError                     no pooled connection came free in time: unavailable
 └── DBAPIError                       connection_invalidated (a disconnect): unavailable
      ├── OperationalError            unavailable when the driver's code says so (below)
      └── InterfaceError              only as a disconnect: psycopg's are misuse, e.g. a closed cursor
CommitFailed                          the commit itself failed: the outcome is unknown
"""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# SQLite's primary result codes (the low byte of an extended code) that a retry can cure:
# another writer holds the lock past the busy timeout, or the file or memory is in trouble.
_SQLITE_UNAVAILABLE = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)
# PostgreSQL SQLSTATE classes: connection exception, transaction rollback (serialization
# failure, deadlock: nothing was written, retry), insufficient resources (too many
# connections, disk full), operator intervention (shutdown, cannot connect now,
# statement timeout) and system error (I/O).
_PG_UNAVAILABLE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_PG_LOCK_NOT_AVAILABLE = "55P03"


class CommitFailed(Exception):
    """The database failed while committing: the transaction may or may not be written.

    Raised from the driver's error (its `__cause__`) by `write_transaction`, so that a
    caller can tell "nothing was written" from "nobody knows".
    """


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot serve right now (retry later), not a bug."""
    if isinstance(exc, CommitFailed):
        return exc.__cause__ is not None and unavailable(exc.__cause__)
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError) and _driver_unavailable(exc.orig)


def _driver_unavailable(orig: BaseException | None) -> bool:
    if isinstance(orig, sqlite3.Error):
        return orig.sqlite_errorcode & 0xFF in _SQLITE_UNAVAILABLE
    # psycopg: an error raised without a server's answer (refused, lost, closed
    # connection) has no SQLSTATE at all.
    sqlstate: str | None = getattr(orig, "sqlstate", None)
    return (
        sqlstate is None
        or sqlstate[:2] in _PG_UNAVAILABLE_CLASSES
        or sqlstate == _PG_LOCK_NOT_AVAILABLE
    )


def reason(exc: BaseException) -> str:
    """One line a log or a terminal can show: the driver's own first line, never SQL or values."""
    cause = exc.__cause__ if isinstance(exc, CommitFailed) else exc
    orig = cause.orig if isinstance(cause, DBAPIError) else cause
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__
