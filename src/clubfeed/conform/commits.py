"""The concurrent-commit check: writers commit for N seconds while a poller follows the
feed the way the README says to, and every change must reach it exactly once.

This is where a server that stamps `modified_at` before its transaction commits fails: a
slow transaction's records carry a time the poller's bookmark has already passed when
they become visible, so no later poll returns them.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import datetime

from clubfeed.conform.probe import Failed, Skipped
from clubfeed.conform.run import Run
from clubfeed.conform.times import instant

WRITERS = 2
BATCH = 10
_SETTLE_S = 30.0


class _Writer(threading.Thread):
    """Creates users in batches, now and then updating one of its own, until told to stop;
    remembers the `modified_at` each batch gave each record."""

    def __init__(self, run: Run, number: int, stop: threading.Event) -> None:
        super().__init__(name=f"conform-writer-{number}", daemon=True)
        self.run_, self.number, self.stop = run, number, stop
        self.last: dict[str, str] = {}  # id → the modified_at of its last write
        self.batches = 0
        self.error: Failed | None = None

    def run(self) -> None:
        made = 0
        chooser = random.Random(self.number)
        try:
            while not self.stop.is_set():
                ids = [f"{self.run_.prefix}w{self.number}-{made + k:06}" for k in range(BATCH)]
                made += BATCH
                if self.last and chooser.random() < 0.3:
                    ids[-2:] = chooser.sample(sorted(self.last), min(2, len(self.last)))
                records = [self.run_.user_record(i, f"Writer {self.batches}") for i in ids]
                answer = self.run_.write("users", records)
                stamp = str(answer.get("modified_at"))
                self.last.update(dict.fromkeys(ids, stamp))
                self.batches += 1
        except Failed as exc:
            self.error = exc
        except Exception as exc:  # an answer the writer could not read
            self.error = Failed(f"{type(exc).__name__}: {exc}")


def concurrent_commits(run: Run) -> str:
    """Writers against a poller for the run's seconds: 0 missed, 0 repeated, and
    `consistent_until` never moving back."""
    if not run.writes:
        raise Skipped("needs an ingest key (--ingest-key) to write concurrently")
    marker = run.write("users", [run.user_record(f"{run.prefix}marker")])
    bookmark = str(marker.get("modified_at"))
    delivered: Counter[tuple[str, str]] = Counter()
    stop = threading.Event()
    writers = [_Writer(run, n, stop) for n in range(WRITERS)]
    for writer in writers:
        writer.start()
    polls, back = 0, []
    mine = f"{run.prefix}w"
    began = time.monotonic()
    last_seen: datetime | None = None
    settle_until: float | None = None
    try:
        while True:
            if settle_until is None and time.monotonic() - began >= run.seconds:
                stop.set()
                for writer in writers:
                    writer.join()
                failed = next((w.error for w in writers if w.error is not None), None)
                if failed is not None:
                    raise Failed(f"a writer's batch failed: {failed}")
                settle_until = time.monotonic() + _SETTLE_S
            records, until = run.probe.query("users", {"modified_since": bookmark})
            polls += 1
            delivered.update(
                (r["id"], r["modified_at"]) for r in records if r["id"].startswith(mine)
            )
            at = instant(until)
            if at is None:
                raise Failed(f"consistent_until {until!r} is not a time")
            if last_seen is not None and at < last_seen:
                back.append(f"{bookmark} → {until}")
            last_seen, bookmark = max(at, last_seen or at), until
            if settle_until is not None:
                written = [instant(s) for w in writers for s in w.last.values()]
                newest = max((w for w in written if w is not None), default=None)
                if newest is None or at > newest:
                    break
                if time.monotonic() > settle_until:
                    raise Failed(
                        f"consistent_until stayed at {until}, before the last write, "
                        f"{_SETTLE_S:.0f} s after the writers stopped"
                    )
            time.sleep(0.02)
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    final = {i: stamp for w in writers for i, stamp in w.last.items()}
    missed = sorted(i for i, stamp in final.items() if (i, stamp) not in delivered)
    repeated = sorted(f"{i} at {s}" for (i, s), n in delivered.items() if n > 1)
    batches = sum(w.batches for w in writers)
    summary = (
        f"{WRITERS} writers, {batches:,} batches of {BATCH} in {run.seconds:g} s; {polls:,} polls: "
        f"{len(missed):,} missed, {len(repeated):,} repeated, consistent_until moved back "
        f"{len(back)} times"
    )
    if missed or repeated or back:
        shown = missed[:2] + repeated[:2] + back[:2]
        raise Failed(f"{summary} (e.g. {', '.join(shown)})")
    return summary
