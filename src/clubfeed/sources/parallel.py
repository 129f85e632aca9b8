"""A large backfill written by worker processes, so the ingest path's Python runs on every core.

One process writes a few thousand source rows a second, most of it Python run one record
at a time (conversion, rendering, hashing). Here the runner still reads the source in
key order, and hands each page to one of `backfill_workers` spawned processes, each with
its own connections and the same `Writer`; the business's write lock still orders their
transactions, and each renders its page before taking it. The runner moves the backfill's
cursor only past pages that every earlier page has committed too, so a restart (or
`kill -9`) resumes with nothing missing before it; pages written past it are read again
and counted unchanged. A worker whose runner dies finds its pipe closed and exits.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from clubfeed.sources.convert import ColumnsProblem, Drafts
from clubfeed.sources.database import Rows, connect, describe_failure
from clubfeed.sources.mapping import MappingFile
from clubfeed.sources.writer import Tenants, Writer
from clubfeed.storage.engine import make_engine
from clubfeed.storage.outages import CommitFailed

PARALLEL_FROM_PAGES = 4
"""A resource of more pages than this is backfilled by workers (fewer: not worth their start)."""


@dataclass(frozen=True)
class Job:
    """One page for a worker: its rows as read, and the businesses of their tenants."""

    seq: int
    resource: str
    rows: Rows
    businesses: dict[str, int]


@dataclass(frozen=True)
class _Done:
    seq: int
    failure: str | None = None  # a database's failure, as `status` shows it
    bug: str | None = None  # anything else: a traceback


class WorkerFailed(Exception):
    """A worker's write failed (a database's trouble, retried like any other), or it died."""


def _work(pipe: Connection, mapping: MappingFile, store_url: str) -> None:
    """A worker's life: write each page it is sent until the runner says stop, or is gone."""
    store = make_engine(store_url)
    source = connect(mapping.source.url)
    drafts = Drafts(mapping.tenancy.column)
    # It never names tenants itself (two workers would create one business twice): the
    # runner sends each page's businesses, creating new ones first.
    tenants = Tenants(store, mapping, dict, refresh_s=math.inf)
    writer = Writer(
        store,
        mapping,
        tenants,
        lambda m, keys: drafts.fetch(source, m, keys, mapping.source.batch_size),
    )
    try:
        while True:
            try:
                job = pipe.recv()
            except EOFError:
                return
            if job is None:
                return
            tenants.learn(job.businesses)
            resource = mapping.for_resource(job.resource)
            assert resource is not None
            try:
                writer.write(resource, drafts.of(resource, job.rows))
            except (SQLAlchemyError, CommitFailed, ColumnsProblem, OSError) as exc:
                pipe.send(_Done(job.seq, failure=describe_failure(exc)))
            except Exception:  # a bug: the runner stops and shows it
                pipe.send(_Done(job.seq, bug=traceback.format_exc()))
            else:
                pipe.send(_Done(job.seq))
    finally:
        source.close()
        store.dispose()


class Workers:
    """`count` worker processes, one page in hand each at most; a context manager."""

    def __init__(self, mapping: MappingFile, store: Engine, count: int) -> None:
        context = multiprocessing.get_context("spawn")  # no forked copies of live connections
        url = store.url.render_as_string(hide_password=False)
        self._processes: list[BaseProcess] = []
        self._idle: list[Connection] = []
        self._busy: dict[Connection, int] = {}
        for index in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_work,
                args=(theirs, mapping, url),
                name=f"clubfeed backfill worker {index + 1}",
                daemon=True,
            )
            process.start()
            theirs.close()
            self._processes.append(process)
            self._idle.append(ours)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(failed=exc[0] is not None)

    @property
    def has_idle(self) -> bool:
        return bool(self._idle)

    @property
    def busy(self) -> bool:
        return bool(self._busy)

    def send(self, job: Job) -> None:
        """Give the page to an idle worker (there must be one)."""
        pipe = self._idle.pop()
        try:
            pipe.send(job)
        except OSError:
            raise WorkerFailed("a backfill worker process died; the backfill resumes") from None
        self._busy[pipe] = job.seq

    def collect(self) -> list[int]:
        """Wait until a worker finishes; the pages finished. WorkerFailed if one failed."""
        finished = []
        for ready in wait(list(self._busy)):
            assert isinstance(ready, Connection)
            try:
                done: _Done = ready.recv()
            except EOFError:
                raise WorkerFailed("a backfill worker process died; the backfill resumes") from None
            del self._busy[ready]
            self._idle.append(ready)
            if done.bug is not None:
                raise RuntimeError(f"a backfill worker failed:\n{done.bug}")
            if done.failure is not None:
                raise WorkerFailed(done.failure)
            finished.append(done.seq)
        return finished

    def close(self, *, failed: bool = False) -> None:
        """Let the workers finish and exit; after a failure, stop them at once (a write
        they are in rolls back)."""
        for pipe in [*self._idle, *self._busy]:
            if not failed:
                with contextlib.suppress(OSError):  # a worker gone already
                    pipe.send(None)
            pipe.close()
        for process in self._processes:
            process.join(timeout=0.1 if failed else 30)
            if process.is_alive():
                process.terminate()
                process.join()
