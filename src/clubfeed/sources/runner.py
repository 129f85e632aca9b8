"""Running a mapping: backfill each resource, then follow its changes, reconciling now and then.

- **Backfill.** The runner notes the greatest stamp the source has committed (M0),
  waits until no transaction that could still commit a stamp at or below it is open
  (`watermark.py`), then reads every row in key order: each row stamped up to M0 is
  committed by then, and anything stamped later is the follow's.
- **Follow.** Each poll reads the rows stamped after the watermark in (modified, key)
  order, writes them, and moves the watermark only as far as `watermark.py` allows.
  Rows read again are counted unchanged and never re-enter the feed.
- **Reconcile.** Every `reconcile` interval the whole query is read again in key order
  and written (drift repaired; unchanged records stay as they are), and records the
  source no longer has, confirmed by key, become tombstones. It runs a page at a time
  between polls, on the same thread, so no poll's write can be overtaken by an older
  read of the same row.

Reads of one resource that fail (the source is down, a column was renamed) are retried
with backoff and shown in `status`; the other resources keep flowing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from clubfeed.sources import convert, parallel, state
from clubfeed.sources.convert import ColumnsProblem, Draft, Layout
from clubfeed.sources.database import Guard, Rows, SourceDB, describe_failure
from clubfeed.sources.mapping import MappingFile, ResourceMapping
from clubfeed.sources.parallel import WorkerFailed
from clubfeed.sources.watermark import Watermark
from clubfeed.sources.writer import Tenants, Writer, Written
from clubfeed.storage.engine import read_connection, write_transaction
from clubfeed.storage.outages import CommitFailed
from clubfeed.storage.schema import RESOURCE_TABLES
from clubfeed.timefmt import now_us

_MAX_BACKOFF_S = 60.0
_RETRIES_PER_POLL = 1_000


@dataclass
class _Resource:
    """One resource's reading, in memory; its cursor row holds what must survive a restart."""

    mapping: ResourceMapping
    watermark: Watermark
    phase: str
    backfill_limit: str | None = None  # M0 as typed JSON (JSON null: the source had no rows)
    backfill_after: Any = None  # the last key the backfill wrote
    reconciled_at: int | None = None
    seen: dict[tuple[str, Any], Any] = field(default_factory=dict)  # (tenant, key) → stamp written
    retry_at: float = 0.0
    backoff_s: float = 0.0
    reconcile: _Reconcile | None = None


@dataclass
class _Reconcile:
    started_us: int
    started_s: float
    live: dict[int, set[str]]
    after: Any = None
    key_is_int: bool = False
    repaired: int = 0
    deleted: int = 0


class Runner:
    """Keeps a mapping's resources in sync; `run()` until `stop` is set, or one pass."""

    def __init__(
        self,
        mapping: MappingFile,
        store: Engine,
        source: SourceDB,
        *,
        console: Console | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.mapping = mapping
        self.store = store
        self.source = source
        self.console = console or Console(stderr=True, quiet=True)
        self.on_event = on_event or (lambda _event: None)
        self.settings = mapping.source
        self._stop = threading.Event()
        self.tenants = Tenants(
            store, mapping, self._names, refresh_s=mapping.source.poll_interval_s
        )
        self.drafts = convert.Drafts(mapping.tenancy.column)
        self.writer = Writer(store, mapping, self.tenants, self.fetch)
        self.resources = [self._load(m) for m in mapping.resources]

    # -- state ---------------------------------------------------------------------------

    def _load(self, mapping: ResourceMapping) -> _Resource:
        with read_connection(self.store) as conn:
            cursor = state.load_cursor(conn, self.mapping.name, mapping.resource.name)
        safe = state.decode_value(cursor.watermark) if cursor.watermark is not None else None
        return _Resource(
            mapping=mapping,
            watermark=Watermark(safe, self.settings.clock_margin_s, self.settings.fixed_lag_s),
            phase=cursor.phase,
            backfill_limit=cursor.backfill_limit,
            backfill_after=(
                state.decode_value(cursor.backfill_after) if cursor.backfill_after else None
            ),
            reconciled_at=cursor.reconciled_at,
        )

    def _save(self, item: _Resource, **values: Any) -> None:
        with write_transaction(self.store) as conn:
            state.save_cursor(conn, self.mapping.name, item.mapping.resource.name, **values)

    def _names(self) -> dict[str, str]:
        """Tenant display names from create_missing.name_query."""
        query = self.mapping.tenancy.name_query
        if query is None:
            return {}
        return {str(tenant): str(name) for tenant, name in self.source.tenant_names(query)}

    # -- reading -------------------------------------------------------------------------

    def _layout(self, item: _Resource, rows: Rows) -> Layout:
        return self.drafts.layout(item.mapping, rows)

    def _drafts(self, item: _Resource, rows: Rows) -> list[Draft]:
        return self.drafts.of(item.mapping, rows)

    def fetch(self, mapping: ResourceMapping, keys: Sequence[Any]) -> list[Draft]:
        """Drafts of `mapping`'s rows with these keys, read from the source now."""
        return self.drafts.fetch(self.source, mapping, keys, self.settings.batch_size)

    # -- backfill ------------------------------------------------------------------------

    def backfill(self, item: _Resource, progress: Progress | None = None) -> None:
        """Read every row of the resource once, in key order, resuming where a run stopped.

        A resource of more than a few pages is written by worker processes (`parallel.py`)
        when the mapping allows more than one.
        """
        mapping = item.mapping
        if item.backfill_limit is None:
            self.start_backfills([item])
            if item.backfill_limit is None:
                return  # stopped while waiting
        workers = self.settings.backfill_workers
        total = self.source.count(mapping) if progress is not None or workers > 1 else None
        task = progress.add_task(mapping.resource.name, total=total) if progress else None

        def advance(rows: int) -> None:
            if progress is not None and task is not None:
                progress.advance(task, rows)

        pages = (total or 0) / self.settings.batch_size
        if workers > 1 and pages > parallel.PARALLEL_FROM_PAGES:
            self._backfill_in_workers(item, workers, advance)
        else:
            workers = 1
            self._backfill_here(item, advance)
        limit_value = state.decode_value(item.backfill_limit)
        item.watermark.safe = limit_value
        item.phase = "follow"
        item.reconciled_at = now_us()
        self._save(
            item,
            phase="follow",
            watermark=None if limit_value is None else state.encode_value(limit_value),
            reconciled_at=item.reconciled_at,
            caught_up_at=now_us(),
        )
        self.on_event(
            {"event": "backfilled", "resource": mapping.resource.name, "workers": workers}
        )

    def _backfill_here(self, item: _Resource, advance: Callable[[int], None]) -> None:
        while True:
            rows = self.source.read_by_key(
                item.mapping, after=item.backfill_after, limit=self.settings.batch_size
            )
            if rows.rows:
                drafts = self._drafts(item, rows)
                self._write(item, drafts)
                item.backfill_after = drafts[-1].key
                self._save(item, backfill_after=state.encode_value(item.backfill_after))
                advance(len(rows.rows))
            if len(rows.rows) < self.settings.batch_size:
                return

    def _backfill_in_workers(
        self, item: _Resource, count: int, advance: Callable[[int], None]
    ) -> None:
        """The backfill's pages, read here and written by `count` worker processes.

        The next page is read while the workers write; the cursor moves past a page once
        it and every page before it are committed.
        """
        mapping = item.mapping
        batch = self.settings.batch_size
        after = item.backfill_after
        reading = True
        page: parallel.Job | None = None
        sent: deque[tuple[int, Any, int]] = deque()  # (seq, its last key, rows) in key order
        finished: set[int] = set()

        def save(after: Any) -> None:
            self._save(item, backfill_after=state.encode_value(after))

        with (
            parallel.Workers(self.mapping, self.store, count) as workers,
            _CursorSaver(save) as saver,
        ):
            while True:
                if page is None and reading:
                    rows = self.source.read_by_key(mapping, after=after, limit=batch)
                    reading = len(rows.rows) == batch
                    if rows.rows:
                        plan = self._layout(item, rows)  # a query that cannot map fails here
                        seq = sent[-1][0] + 1 if sent else 0
                        page = parallel.Job(
                            seq, mapping.resource.name, rows, self._businesses_of(plan, rows)
                        )
                        after = rows.rows[-1][plan.key]
                        sent.append((seq, after, len(rows.rows)))
                if page is not None and workers.has_idle:
                    workers.send(page)
                    page = None
                    continue
                if not workers.busy:
                    break
                finished.update(workers.collect())
                moved = 0
                while sent and sent[0][0] in finished:
                    seq, item.backfill_after, rows_done = sent.popleft()
                    finished.discard(seq)
                    moved += rows_done
                if moved:
                    saver.post(item.backfill_after)
                    advance(moved)
        self.writer.reload_problems(mapping)

    def _businesses_of(self, plan: Layout, rows: Rows) -> dict[str, int]:
        """The businesses of a page's tenants, new ones created here, for a worker to use."""
        if self.mapping.tenancy.business_id is not None:
            return {}
        found = {}
        for tenant in {convert.tenant_of(plan, row) for row in rows.rows}:
            business_id = self.tenants.business(tenant)
            if business_id is not None:
                found[tenant] = business_id
        return found

    def start_backfills(self, items: list[_Resource]) -> None:
        """Note each resource's greatest committed stamp (M0), then wait once for all of them."""
        limits = []
        for item in items:
            try:
                limits.append((item, self.source.max_modified(item.mapping)))
            except SQLAlchemyError:
                if len(items) == 1:
                    raise
                # Left for its own backfill to try again, and report.
        if not limits:
            return
        guard = self.source.guard()
        if not self._wait_for_open_transactions(limits[0][0], guard.now_s):
            return
        for item, limit in limits:
            item.backfill_limit = state.encode_value(limit)
            self._save(
                item,
                phase="backfill",
                backfill_limit=item.backfill_limit,
                backfill_after=None,
                guarantee=_guarantee(guard),
            )

    def _wait_for_open_transactions(self, item: _Resource, read_at: float) -> bool:
        """Wait until every transaction that could still commit a stamp up to M0 has ended;
        False if the runner was stopped first."""
        margin = 2 * self.settings.clock_margin_s
        while True:
            guard = self.source.guard()
            horizon = item.watermark.horizon(guard)
            if read_at + margin < horizon:
                return True
            if guard.oldest_open_s is not None and guard.oldest_open_s <= read_at + margin:
                self.console.print(
                    f"{item.mapping.resource.name}: waiting for a source transaction open "
                    f"{guard.now_s - guard.oldest_open_s:.0f} s to end before the backfill"
                )
            if self._stop.wait(
                min(self.settings.poll_interval_s, max(0.05, read_at + margin - horizon))
            ):
                return False

    # -- follow --------------------------------------------------------------------------

    def poll(self, item: _Resource) -> None:
        """Read what changed since the watermark, write it, and move the watermark on."""
        mapping = item.mapping
        guard = self.source.guard()
        settled = item.watermark.settled(guard)
        reread: Counter[str] = Counter()  # rows already written at this stamp, by tenant
        after: tuple[Any, Any] | None = None
        greatest = None
        while True:
            rows = self.source.read_changed(
                mapping, above=item.watermark.safe, after=after, limit=self.settings.batch_size
            )
            if not rows.rows:
                break
            plan = self._layout(item, rows)
            fresh = []
            for row in rows.rows:
                tenant = convert.tenant_of(plan, row)
                if item.seen.get((tenant, row[plan.key])) == row[plan.modified]:
                    reread[tenant] += 1
                else:
                    fresh.append(convert.draft(mapping, plan, row))
            if fresh:
                self._write(item, fresh)
            last = rows.rows[-1]
            after = (last[plan.modified], last[plan.key])
            greatest = last[plan.modified]
            if len(rows.rows) < self.settings.batch_size:
                break
        read_at = self.source.guard().now_s
        if greatest is not None:
            item.watermark.read(read_at, greatest)
        if settled is not None and settled != item.watermark.safe:
            item.watermark.safe = settled
            item.seen = {k: v for k, v in item.seen.items() if v > settled}
        safe = item.watermark.safe
        with write_transaction(self.store) as conn:
            for tenant, count in reread.items():
                business_id = self.tenants.business(tenant)
                if business_id is not None:
                    state.add_counts(
                        conn, self.mapping.name, mapping.resource.name, business_id, unchanged=count
                    )
            state.save_cursor(
                conn,
                self.mapping.name,
                mapping.resource.name,
                watermark=None if safe is None else state.encode_value(safe),
                guarantee=_guarantee(guard),
                held_since=_held_since(guard, item.watermark),
                caught_up_at=now_us(),
                last_error=None,
            )

    def _write(self, item: _Resource, drafts: list[Draft]) -> Written:
        written = self.writer.write(item.mapping, drafts)
        for d in drafts:
            item.seen[(d.tenant, d.key)] = d.modified
        return written

    def retry_held(self, item: _Resource) -> None:
        """Rows held for a missing reference: read them again by key and try once more."""
        with read_connection(self.store) as conn:
            held = state.problem_keys(
                conn,
                self.mapping.name,
                item.mapping.resource.name,
                kind="reference",
                limit=_RETRIES_PER_POLL,
            )
        if not held:
            return
        drafts = self.fetch(item.mapping, sorted({key for _, key in held}, key=repr))
        wanted = set(held)
        drafts = [d for d in drafts if (d.tenant, d.key) in wanted]
        gone = wanted - {(d.tenant, d.key) for d in drafts}
        if drafts:
            self.writer.write(item.mapping, drafts)
        if gone:
            self.writer.forget(item.mapping, gone)

    # -- reconcile -----------------------------------------------------------------------

    def reconcile_due(self, item: _Resource) -> bool:
        if item.phase != "follow":
            return False
        if item.reconcile is not None:
            return True
        last = item.reconciled_at or 0
        return now_us() - last >= item.mapping.reconcile_s * 1_000_000

    def reconcile_step(self, item: _Resource) -> bool:
        """One page of a reconcile pass (starting one if none runs); True when it finished."""
        mapping = item.mapping
        if item.reconcile is None:
            item.reconcile = _Reconcile(now_us(), time.monotonic(), self._live_ids(mapping))
        run = item.reconcile
        rows = self.source.read_by_key(mapping, after=run.after, limit=self.settings.batch_size)
        if rows.rows:
            drafts = self._drafts(item, rows)
            run.key_is_int = run.key_is_int or isinstance(drafts[0].key, int)
            written = self._write(item, drafts)
            run.repaired += written.created + written.updated
            run.deleted += written.deleted
            for d in drafts:
                business_id = self.tenants.business(d.tenant)
                if business_id is not None and d.record_id is not None:
                    run.live.get(business_id, set()).discard(d.record_id)
            run.after = drafts[-1].key
        if len(rows.rows) == self.settings.batch_size:
            return False
        self._finish_reconcile(item, run)
        return True

    def _live_ids(self, mapping: ResourceMapping) -> dict[int, set[str]]:
        """Every live record id of the resource, per business this mapping writes."""
        table = RESOURCE_TABLES[mapping.resource.name]
        businesses = self._businesses()
        live: dict[int, set[str]] = {b: set() for b in businesses}
        with read_connection(self.store) as conn:
            for business_id in businesses:
                rows = conn.execute(
                    select(table.c.id).where(
                        table.c.business_id == business_id, table.c.deleted_at.is_(None)
                    )
                )
                live[business_id] = {row[0] for row in rows}
        return live

    def _businesses(self) -> list[int]:
        tenancy = self.mapping.tenancy
        if tenancy.business_id is not None:
            return [tenancy.business_id]
        with read_connection(self.store) as conn:
            made = state.tenant_businesses(conn, self.mapping.name)
        return sorted(set(made.values()) | set((tenancy.businesses or {}).values()))

    def _finish_reconcile(self, item: _Resource, run: _Reconcile) -> None:
        """Confirm by key that the records not read are gone from the source; delete those."""
        mapping = item.mapping
        for business_id, missing in run.live.items():
            ids = sorted(missing)
            for start in range(0, len(ids), self.settings.batch_size):
                chunk = ids[start : start + self.settings.batch_size]
                keys: list[Any] = [
                    int(i) if run.key_is_int and i.lstrip("-").isdigit() else i for i in chunk
                ]
                present = [
                    d
                    for d in self.fetch(mapping, keys)
                    if self.tenants.business(d.tenant) == business_id
                ]
                found = {d.record_id for d in present}
                if present:
                    self._write(item, present)
                gone = [i for i in chunk if i not in found]
                if gone:
                    run.deleted += self.writer.delete(mapping, business_id, gone)
        item.reconcile = None
        item.reconciled_at = run.started_us
        self._save(
            item,
            reconciled_at=run.started_us,
            reconcile_seconds=round((time.monotonic() - run.started_s) * 1000),
            reconcile_repaired=run.repaired,
            reconcile_deleted=run.deleted,
        )
        self.on_event(
            {
                "event": "reconciled",
                "resource": mapping.resource.name,
                "repaired": run.repaired,
                "deleted": run.deleted,
            }
        )

    # -- the loop ------------------------------------------------------------------------

    def _guarded(self, item: _Resource, work: Callable[[], Any]) -> bool:
        """Run one step of a resource; a failure of either database backs it off and is
        recorded, and the other resources go on."""
        now = time.monotonic()
        if now < item.retry_at:
            return False
        try:
            work()
        except (SQLAlchemyError, CommitFailed, ColumnsProblem, OSError, WorkerFailed) as exc:
            problem = str(exc) if isinstance(exc, WorkerFailed) else describe_failure(exc)
            item.backoff_s = min(
                _MAX_BACKOFF_S, max(self.settings.poll_interval_s, item.backoff_s * 2)
            )
            item.retry_at = now + item.backoff_s
            name = item.mapping.resource.name
            with contextlib.suppress(SQLAlchemyError, CommitFailed):
                self._save(item, last_error=problem, last_error_at=now_us())
            self.on_event({"event": "error", "resource": name, "error": problem})
            self.console.print(
                f"[red]{name}[/red]: {escape(problem)}; retrying in {item.backoff_s:.0f} s"
            )
            return False
        item.backoff_s = 0.0
        item.retry_at = 0.0
        return True

    def run(self, *, once: bool = False, stop: threading.Event | None = None) -> list[str]:
        """Backfill what needs it, then follow until `stop` (or one pass with `once`).

        Returns the resources whose last step failed (their errors are in `status`).
        """
        stop = self._stop = stop or threading.Event()
        failed: set[str] = set()
        fresh = [r for r in self.resources if r.phase == "backfill" and r.backfill_limit is None]
        if fresh:
            # One wait for every resource, not one each; a failure leaves each to its own.
            with contextlib.suppress(SQLAlchemyError):
                self.start_backfills(fresh)
        while not stop.is_set():
            started = time.monotonic()
            for item in self.resources:
                name = item.mapping.resource.name
                if self._step(item, once=once):
                    failed.discard(name)
                elif item.retry_at:
                    failed.add(name)
                if stop.is_set():
                    break
            if once:
                break
            stop.wait(max(0.0, self.settings.poll_interval_s - (time.monotonic() - started)))
        return sorted(failed)

    def _step(self, item: _Resource, *, once: bool) -> bool:
        """One turn of a resource: its backfill, or a poll, held retries and reconcile."""
        if item.phase == "backfill":
            with self._progress() as progress:
                return self._guarded(item, partial(self.backfill, item, progress))
        if not self._guarded(item, partial(self.poll, item)):
            return False
        if not self._guarded(item, partial(self.retry_held, item)):
            return False
        if self.reconcile_due(item):
            step = self._reconcile_all if once else self.reconcile_step
            return self._guarded(item, partial(step, item))
        return True

    def _progress(self) -> Progress:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        return Progress(*columns, console=self.console, transient=False)

    def _reconcile_all(self, item: _Resource) -> None:
        while not self.reconcile_step(item):
            pass


class _CursorSaver:
    """Saves the backfill's cursor on a thread of its own, latest position only.

    On SQLite a save waits for the store's one write lock, which a worker holds for a whole
    page: saved inline, the runner would sit in that wait instead of reading the next page
    and keeping the workers busy. A position overtaken before it was saved is skipped; the
    cursor only lags, and rows past it are read again and counted unchanged. A failed save
    is raised by the next `post`, or on leaving.
    """

    def __init__(self, save: Callable[[Any], None]) -> None:
        self._save = save
        self._changed = threading.Condition()
        self._pending: list[Any] = []  # the position to save next, if any
        self._closing = False
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="backfill cursor", daemon=True)
        self._thread.start()

    def __enter__(self) -> _CursorSaver:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify()
        self._thread.join()
        if self._failure is not None and kind is None:
            raise self._failure

    def post(self, after: Any) -> None:
        """Save `after` as the cursor soon, instead of any position not saved yet."""
        with self._changed:
            if self._failure is not None:
                raise self._failure
            self._pending[:] = [after]
            self._changed.notify()

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not self._pending and not self._closing:
                    self._changed.wait()
                if not self._pending:
                    return
                after = self._pending.pop()
            try:
                self._save(after)
            except BaseException as exc:  # the runner raises it, and handles it as its own
                with self._changed:
                    self._failure = exc
                return


def _guarantee(guard: Guard) -> str:
    """What holds the watermark back: the source's open transactions, or a fixed lag."""
    return "transactions" if guard.visible else "fixed lag"


def _held_since(guard: Guard, watermark: Watermark) -> int | None:
    """When the oldest open transaction holding the watermark back began (µs), if one does."""
    if guard.oldest_open_s is None or not watermark.pending:
        return None
    return round(guard.oldest_open_s * 1_000_000)
