"""Tools for the feed proofs: direct writes, held transactions, the oracle, and a checking poller.

The poller is what an integrator runs: an optional complete transfer, then
windows that each start at the previous response's `consistent_until`. It
checks the guarantee on every response it gets, so a test only has to drive
writes and compare the copy with the database at the end.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
import msgspec
from sqlalchemy import Connection, Engine, text
from starlette.datastructures import QueryParams

from clubfeed import catalogue
from clubfeed.api import params as list_params
from clubfeed.catalogue import Resource
from clubfeed.feed import clock, queries
from clubfeed.feed.cursor import CursorSigner
from clubfeed.ingest.validate import record_type, validated
from clubfeed.ingest.write import Changes, apply_changes
from clubfeed.storage.engine import read_connection, write_transaction
from clubfeed.timefmt import format_us, parse_aware, to_us
from tests.factories import record

USERS = catalogue.get("users")
EPOCH = format_us(0)
SIGNER = CursorSigner(b"feed proofs")
Record = dict[str, Any]


def us(value: str) -> int:
    """An RFC 3339 datetime from the API as integer microseconds."""
    return to_us(parse_aware(value))


def decoded(resource: Resource, records: Sequence[Record]) -> list[Any]:
    """Records as the ingest API hands them to `apply_changes` (validated msgspec structs)."""
    as_list: Any = list[record_type(resource)]  # type: ignore[misc]
    structs: list[Any] = msgspec.json.decode(msgspec.json.encode(list(records)), type=as_list)
    return structs


def users(ids: Iterable[str], **overrides: Any) -> list[Any]:
    return decoded(USERS, [record("users", i, **overrides) for i in ids])


def write(
    engine: Engine,
    business_id: int,
    upserts: Sequence[Any] = (),
    deletes: Sequence[str] = (),
    resource: Resource = USERS,
) -> Changes:
    """One committed write transaction, exactly as the ingest API runs it."""
    with write_transaction(engine) as conn:
        # No batch limit: some proofs need more records in one instant than a batch holds.
        batch = validated(resource, list(upserts), list(deletes), limit=None)
        return apply_changes(conn, business_id=business_id, batch=batch)


class _RollBack(Exception):
    pass


class HeldWrite(threading.Thread):
    """A write that stamps its rows, then holds its transaction open until `release`.

    Use as a context manager: leaving it releases the transaction and waits for
    the thread, so a failing test never leaves a write holding the clock.
    """

    def __init__(
        self,
        engine: Engine,
        business_id: int,
        upserts: Sequence[Any] = (),
        deletes: Sequence[str] = (),
        *,
        resource: Resource = USERS,
        held: bool = True,
        rollback: bool = False,
    ) -> None:
        super().__init__(daemon=True)
        self.engine, self.business_id, self.resource = engine, business_id, resource
        self.upserts, self.deletes, self.rollback = list(upserts), list(deletes), rollback
        self.stamped = threading.Event()
        self.release = threading.Event()
        self.done = threading.Event()
        self.changes: Changes | None = None
        self.error: BaseException | None = None
        if not held:
            self.release.set()

    def run(self) -> None:
        try:
            with write_transaction(self.engine) as conn:
                batch = validated(self.resource, self.upserts, self.deletes)
                self.changes = apply_changes(conn, business_id=self.business_id, batch=batch)
                self.stamped.set()
                self.release.wait(60)
                if self.rollback:
                    raise _RollBack
        except _RollBack:
            pass
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    @property
    def modified_us(self) -> int:
        assert self.changes is not None, "the write has not stamped yet"
        return self.changes.modified_us

    def commit(self) -> Changes:
        """Let the transaction end (commit, or roll back if asked) and wait for it."""
        self.release.set()
        self.join(60)
        assert not self.is_alive(), "the held write did not finish"
        if self.error is not None:
            raise self.error
        assert self.changes is not None
        return self.changes

    def __enter__(self) -> HeldWrite:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.release.set()
        # After a failure this write may be queued behind an enclosing one that is
        # released only when its own `with` exits: do not wait long for it.
        self.join(60 if t is None else 1)


def live_records(engine: Engine, business_id: int, resource: Resource = USERS) -> dict[str, Record]:
    """The oracle: the business's live records of `resource`, read straight from its table."""
    with read_connection(engine) as conn:
        rows = conn.execute(
            text(
                f"SELECT id, body FROM {resource.table} "
                "WHERE business_id = :b AND deleted_at IS NULL"
            ),
            {"b": business_id},
        ).all()
    return {row.id: json.loads(row.body) for row in rows}


def change_seqs(engine: Engine, business_id: int, resource: Resource = USERS) -> dict[str, int]:
    with read_connection(engine) as conn:
        rows = conn.execute(
            text(f"SELECT id, change_seq FROM {resource.table} WHERE business_id = :b"),
            {"b": business_id},
        ).all()
    return {row.id: row.change_seq for row in rows}


def clock_reading(engine: Engine, business_id: int) -> clock.Reading:
    with read_connection(engine) as conn:
        return clock.read(conn, business_id)


@dataclass(frozen=True)
class Page:
    records: list[Record]
    next_cursor: str | None
    consistent_until: str


Fetch = Callable[[dict[str, str]], Page]
"""One list request: query parameters (strings, as on the wire) in, one page out."""


def direct_fetch(
    engine: Engine, business_id: int, resource: Resource = USERS, *, conn: Connection | None = None
) -> Fetch:
    """Pages from `queries.list_page` on a pooled connection, as the API's handler gets them.

    With `conn`, every page runs on that one connection, each in its own
    transaction: the same reads without a pool checkout per page, for long loops.
    """

    def page_on(connection: Connection, params: dict[str, str]) -> queries.Page:
        # The API's own parsing, so that modified_after means here what it means there.
        parsed = list_params.parse(resource, QueryParams(params))
        return queries.list_page(
            connection,
            SIGNER,
            business_id=business_id,
            resource=resource,
            query=parsed.query,
            limit=parsed.limit,
            cursor=parsed.cursor,
        )

    def fetch(params: dict[str, str]) -> Page:
        if conn is None:
            with read_connection(engine) as pooled:
                page = page_on(pooled, params)
        else:
            page = page_on(conn, params)
            conn.rollback()
        return Page(
            json.loads(f"[{page.items}]"), page.next_cursor, format_us(page.consistent_until_us)
        )

    return fetch


def http_fetch(client: httpx.Client, headers: dict[str, str], resource: str = "users") -> Fetch:
    """Pages through real HTTP with a reader's credentials."""

    def fetch(params: dict[str, str]) -> Page:
        response = client.get(f"/v1/{resource}", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        return Page(body["data"], body["next_cursor"], body["consistent_until"])

    return fetch


@dataclass(frozen=True)
class Window:
    """One paged query a poller made: what it asked, what it got, and when (monotonic seconds)."""

    since_us: int | None
    until_us: int
    complete: bool
    started: float
    first_page_done: float
    finished: float
    versions: frozenset[tuple[str, int]]


def read_pages(
    fetch: Fetch,
    params: dict[str, str],
    limit: int,
    between_pages: Callable[[], None] | None = None,
) -> tuple[list[Record], str, float]:
    """Every record of a paged query, its consistent_until, and when its first page came back."""
    records: list[Record] = []
    page = fetch({**params, "limit": str(limit)})
    first_page_done = time.monotonic()
    until = page.consistent_until
    while True:
        records += page.records
        assert page.consistent_until == until, "consistent_until changed between pages"
        if page.next_cursor is None:
            return records, until, first_page_done
        if between_pages is not None:
            between_pages()
        page = fetch({**params, "limit": str(limit), "cursor": page.next_cursor})


PER_PAGE = "per page"
PER_RECORD = "per record"
STYLES = (PER_PAGE, PER_RECORD)
"""How a poller keeps its place: `consistent_until` as the next `modified_since`, or, as
sync frameworks do, the greatest `modified_at` it has seen as the next `modified_after`."""


class Poller:
    """An integrator's copy of one resource, checking every response against the guarantee.

    Checked on every response: records come in modified_at order, each id at most
    once; every record lies in the window asked, [since, min(before, consistent_until)),
    or after the bookmark; no version (id, modified_at) ever arrives twice; a complete
    transfer holds no tombstones. `copy` is the integrator's view (live records by id);
    `windows` records every query for checks against a log of the writes.
    """

    def __init__(self, fetch: Fetch, since: str = EPOCH, style: str = PER_PAGE) -> None:
        self.fetch = fetch
        self.since = since
        self.style = style
        # PER_RECORD: the greatest modified_at seen, once there is one.
        self.bookmark: str | None = None
        self.copy: dict[str, Record] = {}
        self.versions: set[tuple[str, str]] = set()
        self.windows: list[Window] = []

    def transfer(
        self, limit: int = 1000, between_pages: Callable[[], None] | None = None
    ) -> list[Record]:
        """A complete transfer (live records only); the next window starts at its consistent_until."""
        started = time.monotonic()
        records, until, first_page_done = read_pages(self.fetch, {}, limit, between_pages)
        assert not any(r.get("deleted") for r in records), "a complete transfer held a tombstone"
        self.copy = {}
        self._take(records, None, until, started, first_page_done)
        return records

    def poll(
        self,
        limit: int = 1000,
        before: str | None = None,
        between_pages: Callable[[], None] | None = None,
    ) -> list[Record]:
        """One window from `since` (to `before`, if given), all of its pages applied to the copy."""
        params = {"modified_since": self.since}
        low = self.since
        if self.bookmark is not None:
            params = {"modified_after": self.bookmark}
            low = format_us(us(self.bookmark) + 1)
        if before is not None:
            params["modified_before"] = before
        started = time.monotonic()
        records, until, first_page_done = read_pages(self.fetch, params, limit, between_pages)
        if before is not None:
            assert us(until) <= us(before), "consistent_until went past modified_before"
        assert us(until) >= us(low), "consistent_until went backwards"
        self._take(records, low, until, started, first_page_done)
        return records

    def _take(
        self,
        records: list[Record],
        since: str | None,
        until: str,
        started: float,
        first_page_done: float,
    ) -> None:
        low, high = (None if since is None else us(since)), us(until)
        stamps = [us(r["modified_at"]) for r in records]
        assert stamps == sorted(stamps), "records out of modified_at order"
        ids = [r["id"] for r in records]
        assert len(ids) == len(set(ids)), "one window returned a record twice"
        for item, stamp in zip(records, stamps, strict=True):
            assert low is None or stamp >= low, f"{item['id']} is before the window"
            assert stamp < high, f"{item['id']} is at or after consistent_until {until}"
            version = (item["id"], item["modified_at"])
            assert version not in self.versions, f"{version} arrived twice"
            self.versions.add(version)
            if item.get("deleted"):
                self.copy.pop(item["id"], None)
            else:
                self.copy[item["id"]] = item
        self.windows.append(
            Window(
                low,
                high,
                since is None,
                started,
                first_page_done,
                time.monotonic(),
                frozenset(zip(ids, stamps, strict=True)),
            )
        )
        self.since = until
        if self.style == PER_RECORD and records:
            # As a framework keeps it: the newest record's own modified_at text.
            self.bookmark = records[-1]["modified_at"]


def ids(records: Iterable[Record]) -> list[str]:
    return [r["id"] for r in records]
