"""The change feed under concurrent writers, on SQLite and PostgreSQL (DESIGN's feed proofs 1–3).

Writes go through `apply_changes` inside `write_transaction`, as the ingest API
runs them; reads through `queries.list_page`. A `Poller` checks every response
(window bounds, order, no version twice) and its copy is compared with the
table itself at the end.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine

from clubfeed.errors import InvalidInput
from clubfeed.ingest.validate import validated
from clubfeed.ingest.write import apply_changes
from clubfeed.storage.engine import is_sqlite, write_transaction
from tests.factories import new_business, record
from tests.feedkit import (
    STYLES,
    USERS,
    HeldWrite,
    Poller,
    change_seqs,
    clock_reading,
    decoded,
    direct_fetch,
    ids,
    live_records,
    us,
    users,
    write,
)

BLOCKED_FOR = 0.5
"""How long a writer must stay blocked to count as blocked."""


@pytest.fixture(params=STYLES)
def style(request: pytest.FixtureRequest) -> str:
    """Every proof holds for either way of keeping one's place (feedkit.STYLES)."""
    value: str = request.param
    return value


def test_a_poll_between_two_writers_commits_sees_each_row_exactly_once(
    db: Engine, style: str
) -> None:
    """A stamps first; B waits on A's clock row, then stamps later and commits last.

    Polls while A is open, between the commits and after them see every row once:
    consistent_until never passes a stamp that has not committed.
    """
    business = new_business(db).id
    write(db, business, users(["before"]))
    poller = Poller(direct_fetch(db, business), style=style)
    assert ids(poller.poll()) == ["before"]

    with HeldWrite(db, business, users(["a1", "a2"]), deletes=["before"]) as a:
        assert a.stamped.wait(10)
        with HeldWrite(db, business, users(["b1"])) as b:
            b_stamped_while_a_open = b.stamped.wait(BLOCKED_FOR)
            while_a_open = poller.poll()
            assert us(poller.since) <= a.modified_us, "consistent_until passed an open write"

            a.commit()
            assert b.stamped.wait(10)
            between_commits = poller.poll()
            assert us(poller.since) <= b.modified_us

            b.commit()
            after_both = poller.poll()

    assert b.modified_us > a.modified_us
    assert while_a_open == []
    assert ids(between_commits) == ["a1", "a2", "before"]
    assert between_commits[-1]["deleted"] is True
    assert ids(after_both) == ["b1"]
    assert poller.poll() == []
    assert poller.copy == live_records(db, business)
    assert not b_stamped_while_a_open, "B stamped while A held the business's clock"


def test_a_writer_started_while_another_is_open_can_never_slip_below_a_poll(
    db: Engine, style: str
) -> None:
    """B starts while A is open and is free to commit at once; a poll follows; then A commits.

    If B could stamp and commit before A, that poll would move consistent_until
    past A's stamp and A's row would be lost; the clock lock queues B behind A.
    """
    business = new_business(db).id
    poller = Poller(direct_fetch(db, business), style=style)
    with HeldWrite(db, business, users(["a"])) as a:
        assert a.stamped.wait(10)
        with HeldWrite(db, business, users(["b"]), held=False) as b:
            b.done.wait(BLOCKED_FOR)
            first = poller.poll()
            a.commit()
            b.commit()
            second = poller.poll()
    assert sorted(ids(first + second)) == ["a", "b"]
    assert poller.copy == live_records(db, business)
    assert ids(first) == [], "B committed while A held the clock"


def test_writers_of_different_businesses_do_not_wait_for_each_other(db: Engine, style: str) -> None:
    """On PostgreSQL the clock lock is per business; SQLite has one writer per file, but reads flow."""
    x, y = new_business(db).id, new_business(db).id
    poller_y = Poller(direct_fetch(db, y), style=style)
    with HeldWrite(db, x, users(["x"])) as held_x:
        assert held_x.stamped.wait(10)
        with HeldWrite(db, y, users(["y"]), held=False) as free_y:
            y_committed_while_x_open = free_y.done.wait(BLOCKED_FOR if is_sqlite(db) else 10)
            during = poller_y.poll()
            held_x.commit()
            free_y.commit()
            after = poller_y.poll()
    assert ids(during + after) == ["y"]
    assert poller_y.copy == live_records(db, y)
    if is_sqlite(db):
        assert not y_committed_while_x_open and during == []
    else:
        assert y_committed_while_x_open and ids(during) == ["y"]


def test_a_long_transaction_spanning_many_polls_loses_nothing(db: Engine, style: str) -> None:
    """Polls during a long write answer at once, never pass its stamp, and get all of it after.

    Meanwhile another business keeps writing and being polled (PostgreSQL); on
    SQLite its writer waits for the file's one write lock, and its polls still answer.
    """
    x, y = new_business(db).id, new_business(db).id
    write(db, x, users(["x0", "x1"]))
    poller_x, poller_y = (
        Poller(direct_fetch(db, x), style=style),
        Poller(direct_fetch(db, y), style=style),
    )
    assert ids(poller_x.poll()) == ["x0", "x1"]
    long_ids = [f"long-{i:03d}" for i in range(120)]
    y_writer = threading.Thread(
        target=lambda: [write(db, y, users([f"y{i}"])) for i in range(3)], daemon=True
    )

    with HeldWrite(db, x, users(long_ids), deletes=["x0"]) as long:
        assert long.stamped.wait(10)
        with HeldWrite(db, x, users(["x1"], first_name="queued"), held=False) as queued:
            if is_sqlite(db):
                y_writer.start()
            for i in range(12):
                started = time.monotonic()
                assert poller_x.poll(limit=7) == []
                assert time.monotonic() - started < 2, "a poll waited for the open transaction"
                assert us(poller_x.since) <= long.modified_us
                if is_sqlite(db):
                    assert poller_y.poll() == []
                else:
                    write(db, y, users([f"y{i}"]))
                    assert ids(poller_y.poll(limit=2)) == [f"y{i}"]
            assert not queued.stamped.is_set(), "a second writer of x stamped during the long one"
            if is_sqlite(db):
                assert y_writer.is_alive(), "a second writer got the SQLite file's write lock"
            long.commit()
            queued.commit()
    if is_sqlite(db):
        y_writer.join(30)

    got = poller_x.poll(limit=7)
    assert ids(got) == [*long_ids, "x0", "x1"]
    assert got[-2]["deleted"] is True and got[-1]["first_name"] == "queued"
    assert poller_x.poll() == []
    poller_y.poll()
    assert poller_x.copy == live_records(db, x)
    assert poller_y.copy == live_records(db, y)
    assert len(poller_y.copy) == (3 if is_sqlite(db) else 12)


def test_a_rollback_leaves_no_gap_and_no_stall(db: Engine, style: str) -> None:
    """A rolled-back write returns its seqs and instant; the next write takes them and arrives at once."""
    business = new_business(db).id
    write(db, business, users(["kept-0"]))
    poller = Poller(direct_fetch(db, business), style=style)
    assert ids(poller.poll()) == ["kept-0"]
    clock_before = clock_reading(db, business)

    with HeldWrite(db, business, users(["gone-1", "gone-2"]), rollback=True) as doomed:
        assert doomed.stamped.wait(10)
        assert poller.poll() == []
        assert us(poller.since) <= doomed.modified_us
        doomed.commit()
    assert clock_reading(db, business) == clock_before

    with pytest.raises(InvalidInput), write_transaction(db) as conn:
        bad = record("users", "bad", home_location_id="no-such-location")
        batch = validated(USERS, decoded(USERS, [bad]), [])
        apply_changes(conn, business_id=business, batch=batch)
    assert clock_reading(db, business) == clock_before

    started = time.monotonic()
    kept = write(db, business, users(["kept-1"]))
    got = poller.poll()
    assert time.monotonic() - started < 2
    assert ids(got) == ["kept-1"]
    seqs = change_seqs(db, business)
    assert seqs["kept-1"] == clock_before.seq + 1, "the rollback left a gap"
    assert "gone-1" not in seqs and "bad" not in seqs
    assert us(poller.since) == kept.modified_us + 1
    assert poller.poll() == []
    assert poller.copy == live_records(db, business)
