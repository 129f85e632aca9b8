"""The three query kinds: complete transfer, batch lookup by id, and modified range.

Lists page by `change_seq` (keyset, never OFFSET) between bounds fixed by the
first page: `hi`, the clock's seq when the query began, and for a range the seqs
matching its datetimes. Within one business a table's seq order is its
modified_at order, so a datetime bound is one index probe to a seq bound.
Pages are the stored bodies joined; no record is parsed on the way out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from clubfeed.catalogue import Resource
from clubfeed.errors import BadRequest, ErrorItem
from clubfeed.feed import clock, retention, rewind
from clubfeed.feed.cursor import VERSION, CursorSigner, CursorState
from clubfeed.storage.fast import fetch_tuples
from clubfeed.storage.idlists import rows_by_id

COMPLETE = "complete"
RANGE = "range"
DEFAULT_LIMIT = 1_000
"""Records per page when neither the request nor its cursor says."""


_BOUNDS = ("modified_since", "modified_before")


@dataclass(frozen=True)
class ListQuery:
    """What a list asks: field filters and datetime bounds (µs, half-open).

    With either bound it is a range query (tombstones included); without, a
    complete transfer of live records. `since_parameter` names the parameter the
    client sent (`modified_after=T` is `since_us` T + 1), for its error messages.
    """

    filters: tuple[tuple[str, str], ...] = ()
    since_us: int | None = None
    before_us: int | None = None
    since_parameter: str = field(default="modified_since", compare=False)

    @property
    def kind(self) -> str:
        return RANGE if self.since_us is not None or self.before_us is not None else COMPLETE

    def fingerprint(self) -> tuple[tuple[str, str], ...]:
        """Everything that must stay the same from one page to the next."""
        bounds = zip(_BOUNDS, (self.since_us, self.before_us), strict=True)
        return tuple(sorted(self.filters + tuple((k, str(v)) for k, v in bounds if v is not None)))

    @classmethod
    def from_fingerprint(cls, fingerprint: tuple[tuple[str, str], ...]) -> ListQuery:
        """The query a cursor was issued for."""
        values = dict(fingerprint)
        since, before = (values.pop(name, None) for name in _BOUNDS)
        return cls(
            tuple(sorted(values.items())),
            None if since is None else int(since),
            None if before is None else int(before),
        )


@dataclass(frozen=True)
class Page:
    """One page: `items` is the records' JSON joined with commas (no brackets)."""

    items: str
    count: int
    next_cursor: str | None
    consistent_until_us: int


def _seq_at(conn: Connection, resource: Resource, business_id: int, op: str, us: int) -> int | None:
    """The first seq with modified_at >= us (`op` ">="), or the last before it (`op` "<")."""
    order = "ASC" if op == ">=" else "DESC"
    return conn.execute(
        text(
            f"SELECT change_seq FROM {resource.table} WHERE business_id = :b AND modified_at {op} :us "
            f"ORDER BY modified_at {order}, change_seq {order} LIMIT 1"
        ),
        {"b": business_id, "us": us},
    ).scalar()


def _first_position(
    conn: Connection, resource: Resource, business_id: int, query: ListQuery
) -> tuple[int, int, int]:
    """(after, hi, until_us) for a new query: what it may return, and what it promises."""
    now = clock.read(conn, business_id)
    rewind.check_since(now, query.since_us, query.since_parameter)
    after, hi, until_us = 0, now.seq, now.consistent_until_us
    if query.since_us is not None:
        first = _seq_at(conn, resource, business_id, ">=", query.since_us)
        after = hi if first is None else first - 1
    if query.before_us is not None:
        until_us = min(until_us, query.before_us)
        last = _seq_at(conn, resource, business_id, "<", query.before_us)
        hi = min(hi, 0 if last is None else last)
    return after, hi, until_us


# A complete transfer's later pages read no clock row, so the scan itself checks that the
# clock still reaches the cursor's bound: once per statement, never per row. A page it
# empties reads the clock to tell a rewound server from a page whose rows moved on.
_CLOCK_REACHES_HI = ":hi <= (SELECT seq FROM change_clock WHERE business_id = :b)"


def _page_sql(resource: Resource, query: ListQuery, *, guarded: bool) -> str:
    """One keyset scan of the (business_id, change_seq) index; limit + 1 rows tell if more follow."""
    where = ["business_id = :b", "change_seq > :after", "change_seq <= :hi"]
    if query.kind == COMPLETE:
        where.append("deleted_at IS NULL")
        if guarded:
            where.append(_CLOCK_REACHES_HI)
    where += [f"{name} = :f_{name}" for name, _ in query.filters]
    return (
        f"SELECT change_seq, body FROM {resource.table} WHERE {' AND '.join(where)} "
        "ORDER BY change_seq LIMIT :limit_plus_one"
    )


def list_page(
    conn: Connection,
    signer: CursorSigner,
    *,
    business_id: int,
    resource: Resource,
    query: ListQuery | None,
    limit: int | None,
    cursor: str | None = None,
) -> Page:
    """One page of a complete transfer or a range query, and the cursor of the next.

    `query` None means "whatever the cursor was issued for"; a query given with a
    cursor must be the cursor's own. `limit` None is the cursor's, else DEFAULT_LIMIT.
    """
    state = None
    if cursor is None:
        query = query or ListQuery()
        after, hi, until_us = _first_position(conn, resource, business_id, query)
        limit = limit or DEFAULT_LIMIT
    else:
        state = signer.decode(cursor)
        limit = limit or state.limit or DEFAULT_LIMIT
        _check_cursor(state, business_id, resource)
        cursor_query = ListQuery.from_fingerprint(state.filters)
        if query is not None and query.fingerprint() != cursor_query.fingerprint():
            problem = (
                "This cursor belongs to a query with other parameters; send the cursor alone, "
                "or with the same parameters as the first page (the Link header does)."
            )
            raise BadRequest(problem, [ErrorItem(problem, "cursor")])
        query = cursor_query
        after, hi, until_us = state.after, state.hi, state.until_us
    fingerprint = query.fingerprint()
    params: dict[str, object] = {
        "b": business_id,
        "after": after,
        "hi": hi,
        "limit_plus_one": limit + 1,
    }
    params.update({f"f_{name}": value for name, value in query.filters})
    rows = fetch_tuples(conn, _page_sql(resource, query, guarded=state is not None), params)
    if query.kind == RANGE or (state is not None and not rows):
        after_scan = clock.read(conn, business_id, resource.name)
        if state is not None:
            rewind.check_cursor(after_scan, state, query.since_us)
        if query.kind == RANGE:
            retention.check_window(after_scan, query.since_us)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1][0]
        next_cursor = signer.encode(
            CursorState(VERSION, business_id, resource.name, last, hi, until_us, fingerprint, limit)
        )
    return Page(",".join(row[1] for row in rows), len(rows), next_cursor, until_us)


def _check_cursor(state: CursorState, business_id: int, resource: Resource) -> None:
    problem = None
    if state.business_id != business_id:
        problem = "This cursor belongs to another business's query."
    elif state.resource != resource.name:
        problem = f"This cursor belongs to a query of {state.resource}, not {resource.name}."
    if problem is not None:
        raise BadRequest(problem, [ErrorItem(problem, "cursor")])


def lookup(
    conn: Connection, *, business_id: int, resource: Resource, ids: list[str]
) -> tuple[str, list[str]]:
    """Records with these ids, in the order asked (tombstones for deleted ones), and the ids not found."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return "", []
    rows = rows_by_id(conn, resource.table, "id, body", business_id, wanted)
    found: dict[str, str] = {row[0]: row[1] for row in rows}
    items = ",".join(found[i] for i in wanted if i in found)
    return items, [i for i in wanted if i not in found]


def get_one(
    conn: Connection, *, business_id: int, resource: Resource, record_id: str
) -> tuple[str, bool] | None:
    """(body, deleted) of one record, or None if this business never had it."""
    row = conn.execute(
        text(f"SELECT body, deleted_at FROM {resource.table} WHERE business_id = :b AND id = :id"),
        {"b": business_id, "id": record_id},
    ).first()
    return None if row is None else (row.body, row.deleted_at is not None)
