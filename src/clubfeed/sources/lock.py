"""One runner per mapping: a second `clubfeed source run` of the same mapping refuses.

The lock dies with its process (a PostgreSQL session's advisory lock, or an flock on a
file beside a SQLite database), so a runner killed with `kill -9` leaves nothing to
clean up and its successor starts at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text


class AlreadyRunning(Exception):
    """Another process runs this mapping now."""


def _key(mapping: str) -> int:
    """A signed 64-bit advisory lock key for the mapping's name."""
    digest = hashlib.sha256(b"clubfeed source " + mapping.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def hold(store: Engine, mapping: str) -> Iterator[None]:
    """Hold the mapping's lock for the block; AlreadyRunning if another process holds it."""
    if store.dialect.name == "postgresql":
        with store.connect() as conn:
            taken = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(mapping)})
            conn.commit()
            if not taken.scalar():
                raise AlreadyRunning(
                    f"another `clubfeed source run` runs mapping {mapping!r} against this "
                    "database; stop it first (one runner per mapping)"
                )
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _key(mapping)})
                conn.commit()
        return
    database = store.url.database or "clubfeed.db"
    path = Path(f"{database}.source-{mapping}.lock")
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise AlreadyRunning(
                f"another `clubfeed source run` (pid {holder}) runs mapping {mapping!r} "
                f"against {database}; stop it first (one runner per mapping)"
            ) from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
