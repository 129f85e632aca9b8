"""A seeded random run of writers and pollers on SQLite and PostgreSQL (DESIGN's feed proof 7).

Writers log every change they commit with monotonic times around it; pollers
record every window they read. Beyond each poller's own checks and its final
copy, every window is checked against the log in both directions:

- nothing inside a window was still uncommitted when the window's first page
  came back (so nothing can commit below a consistent_until already handed out);
- every change committed before the window began, inside its range and not
  touched again before the window ended, was in it (so nothing is skipped).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine

from clubfeed.errors import InvalidInput
from clubfeed.ingest.validate import validated
from clubfeed.ingest.write import apply_changes
from clubfeed.storage.engine import write_transaction
from clubfeed.timefmt import format_us
from tests.factories import new_business
from tests.feedkit import (
    STYLES,
    USERS,
    Poller,
    Window,
    clock_reading,
    direct_fetch,
    live_records,
    us,
    users,
)

RUN_SECONDS = 1.5
MIN_CHANGES = 150
MAX_SECONDS = 15
IDS = [f"r{i:02d}" for i in range(30)]


@dataclass(frozen=True)
class Change:
    """One committed change of one record, and monotonic times around its transaction."""

    id: str
    modified_us: int
    deleted: bool
    began: float
    releasing: float
    committed: float


class ChangeLog:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changes: list[Change] = []

    def add(self, changes: list[Change]) -> None:
        with self.lock:
            self.changes += changes


def _writer(
    engine: Engine, business: int, seed: int, log: ChangeLog, stop: threading.Event
) -> None:
    """Upserts, updates and deletes of a small id pool, each transaction held open a moment.

    Deleting an id that was never written fails the whole batch, so some
    transactions roll back after stamping, as a failed request does.
    """
    rng = random.Random(seed)
    while not stop.is_set():
        chosen = rng.sample(IDS, rng.randint(1, 6))
        cut = rng.randint(0, len(chosen))
        upserts = users(chosen[:cut], first_name=f"v{rng.random():.9f}")
        began = time.monotonic()
        try:
            with write_transaction(engine) as conn:
                batch = validated(USERS, upserts, chosen[cut:])
                done = apply_changes(conn, business_id=business, batch=batch)
                time.sleep(rng.uniform(0, 0.004))
                releasing = time.monotonic()
        except InvalidInput:
            continue
        committed = time.monotonic()
        log.add(
            [
                Change(record_id, done.modified_us, deleted, began, releasing, committed)
                for deleted, touched in ((False, done.created + done.updated), (True, done.deleted))
                for record_id in touched
            ]
        )


def _poller(poller: Poller, seed: int, stop: threading.Event) -> None:
    """A transfer or not, then windows of random length with random page sizes and pauses."""
    rng = random.Random(seed)

    def pause() -> None:
        time.sleep(rng.uniform(0, 0.003))

    if rng.random() < 0.5:
        poller.transfer(rng.randint(1, 12), pause)
    while not stop.is_set():
        before = None
        if rng.random() < 0.5:
            before = format_us(us(poller.since) + rng.randint(1, 20_000))
        poller.poll(rng.randint(1, 12), before, pause)
        pause()


def _check_windows(windows: list[Window], log: list[Change]) -> None:
    by_id: dict[str, list[Change]] = {}
    for change in log:
        by_id.setdefault(change.id, []).append(change)
    for window in windows:
        low = -1 if window.since_us is None else window.since_us
        for change in log:
            if not low <= change.modified_us < window.until_us:
                continue
            assert change.releasing < window.first_page_done, (
                f"{change} committed after a window covering it was answered: {window}"
            )
            settled = change.committed < window.started and not any(
                later.modified_us > change.modified_us and later.began < window.finished
                for later in by_id[change.id]
            )
            if settled and not (window.complete and change.deleted):
                assert (change.id, change.modified_us) in window.versions, (
                    f"{change} missing from {window}"
                )


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7, 8])
def test_random_writers_and_pollers_all_end_equal_to_the_database(db: Engine, seed: int) -> None:
    """Three writers and four pollers (both styles) for a second or two; every window and copy is exact."""
    business = new_business(db).id
    stop, log = threading.Event(), ChangeLog()
    # Two keep their place by consistent_until, two by the greatest modified_at seen.
    pollers = [Poller(direct_fetch(db, business), style=STYLES[i % 2]) for i in range(4)]
    errors: list[BaseException] = []

    def guarded(target: Callable[..., None], *args: object) -> threading.Thread:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        return threading.Thread(target=run, daemon=True)

    threads = [guarded(_writer, db, business, seed * 10 + i, log, stop) for i in range(3)]
    threads += [guarded(_poller, p, seed * 100 + i, stop) for i, p in enumerate(pollers)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    while not stop.is_set() and time.monotonic() - started < MAX_SECONDS:
        if time.monotonic() - started >= RUN_SECONDS and len(log.changes) >= MIN_CHANGES:
            break
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(30)
    if errors:
        raise errors[0]

    final = live_records(db, business)
    assert len(log.changes) >= MIN_CHANGES, "too few changes to prove anything"
    assert sum(c.deleted for c in log.changes) > 10
    for poller in pollers:
        poller.poll()
        assert poller.copy == final
        assert len(poller.windows) > 10
        _check_windows(poller.windows, log.changes)
    assert clock_reading(db, business).seq >= len(log.changes)
