"""Who read what, when: the API activity a business sees in its console.

Reads must stay reads, so a request only appends an event to an in-memory buffer;
a background thread writes the buffer every `activity_flush_s` seconds in one
transaction, and also keeps each connection's last use current (and creates a
shared-secret connection on its first use). The console flushes its own process's
buffer before it reads, so a single-process deployment shows activity at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, func, insert, select

from clubfeed.auth import connections
from clubfeed.storage import outages
from clubfeed.storage.engine import write_transaction
from clubfeed.storage.schema import api_activity, integrators

log = logging.getLogger(__name__)
MAX_PATH = 500


@dataclass(frozen=True)
class Event:
    business_id: int
    integrator_id: int
    via: str
    at_us: int
    method: str
    path: str
    status: int


class Recorder:
    """Buffers events and writes them in batches from a background thread.

    `dropped` hears how many events a failed write lost (for metrics).
    """

    def __init__(
        self, engine: Engine, interval_s: float, dropped: Callable[[int], None] = lambda _n: None
    ) -> None:
        self._engine = engine
        self._dropped = dropped
        self._interval_s = interval_s
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="activity-recorder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.flush()
            except Exception as exc:
                # Activity is a record for people, not data: losing a batch must not
                # stop the recorder or touch the API. An outage is a line, not a traceback.
                if outages.unavailable(exc):
                    log.warning("could not write API activity (%s); dropped", outages.reason(exc))
                else:
                    log.exception("could not write API activity; this batch is dropped")

    def flush(self) -> None:
        """Write everything buffered so far (one transaction)."""
        with self._flush_lock:
            with self._lock:
                events, self._events = self._events, []
            if events:
                try:
                    with write_transaction(self._engine) as conn:
                        _write(conn, events)
                except Exception:
                    self._dropped(len(events))
                    raise


def _write(conn: Connection, events: list[Event]) -> None:
    conn.execute(
        insert(api_activity),
        [
            {
                "business_id": e.business_id,
                "integrator_id": e.integrator_id,
                "at_us": e.at_us,
                "method": e.method,
                # Paths come from clients: keep them printable and bounded.
                "path": e.path.replace("\x00", "\ufffd")[:MAX_PATH],
                "status": e.status,
                "via": e.via,
            }
            for e in events
        ],
    )
    latest: dict[tuple[int, int, str], int] = {}
    for e in events:
        key = (e.business_id, e.integrator_id, e.via)
        latest[key] = max(latest.get(key, 0), e.at_us)
    for (business_id, integrator_id, via), at in latest.items():
        connections.note_use(
            conn, business_id=business_id, integrator_id=integrator_id, via=via, at=at
        )


@dataclass(frozen=True)
class Entry:
    integrator_name: str
    at_us: int
    method: str
    path: str
    status: int
    via: str


def recent(conn: Connection, business_id: int, limit: int = 100) -> list[Entry]:
    """The business's most recent API requests, newest first."""
    rows = conn.execute(
        select(
            integrators.c.name,
            api_activity.c.at_us,
            api_activity.c.method,
            api_activity.c.path,
            api_activity.c.status,
            api_activity.c.via,
        )
        .join(integrators, integrators.c.id == api_activity.c.integrator_id)
        .where(api_activity.c.business_id == business_id)
        .order_by(api_activity.c.at_us.desc(), api_activity.c.id.desc())
        .limit(limit)
    )
    return [Entry(r.name, r.at_us, r.method, r.path, r.status, r.via) for r in rows]


def requests_per_integrator(conn: Connection, business_id: int) -> dict[str, int]:
    """How many requests each integrator has made of the business (as kept)."""
    rows = conn.execute(
        select(integrators.c.name, func.count())
        .join(integrators, integrators.c.id == api_activity.c.integrator_id)
        .where(api_activity.c.business_id == business_id)
        .group_by(integrators.c.name)
    )
    return {name: count for name, count in rows}


def forget(conn: Connection, business_id: int, before_us: int) -> int:
    """Delete the business's requests made before `before_us`; how many went.

    Every authenticated read adds a row, so without this the table only grows. One
    business at a time, so the (business_id, at_us) index finds the rows.
    """
    result = conn.execute(
        delete(api_activity).where(
            api_activity.c.business_id == business_id, api_activity.c.at_us < before_us
        )
    )
    return result.rowcount
