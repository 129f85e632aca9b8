"""SQLite writers of one process take turns on the engine's own lock, not on SQLite's back-off."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from clubfeed.storage import outages
from clubfeed.storage.engine import make_engine, write_transaction

TIMEOUT_S = 0.3


def test_a_writer_waiting_for_another_of_its_process_times_out_as_unavailable(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'writers.db'}", timeout_s=TIMEOUT_S)
    failures: list[BaseException] = []
    entered: list[str] = []

    def other_writer() -> None:
        try:
            with write_transaction(engine):
                entered.append("other")
        except Exception as exc:
            failures.append(exc)

    try:
        with write_transaction(engine):
            thread = threading.Thread(target=other_writer)
            started = time.monotonic()
            thread.start()
            thread.join()
            waited = time.monotonic() - started
        assert entered == []
        assert [type(f).__name__ for f in failures] == ["TimeoutError"]
        assert outages.unavailable(failures[0])
        assert TIMEOUT_S <= waited < TIMEOUT_S + 1
        # Its turn was only borrowed: the next writer gets in at once.
        with write_transaction(engine):
            entered.append("after")
        assert entered == ["after"]
    finally:
        engine.dispose()
