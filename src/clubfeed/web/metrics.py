"""Prometheus metrics: what the service counts, and the `/metrics` page that shows it.

`Meter` is the interface the app reports to; its methods do nothing, so a process
with `CLUBFEED_METRICS=off` pays one method call where it would count. `Prometheus`
records into prometheus-client. With several worker processes each one writes its
values to files in `PROMETHEUS_MULTIPROC_DIR` (which `clubfeed serve` wipes before the
workers start), and whichever worker answers `/metrics` sums them all.

No label ever holds a business id, an integrator id, a record id or a raw path:
labels are route templates, methods, statuses, resources and problem types, so the
number of series stays fixed however many tenants there are.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import PoolProxiedConnection, QueuePool

from clubfeed.settings import Settings
from clubfeed.storage.engine import make_engine
from clubfeed.timefmt import now_us
from clubfeed.web.rfc9457 import problem_response

MODES = ("off", "loopback", "token")
MIN_TOKEN_LENGTH = 16
# How long a scrape waits for the database before answering without the source figures
# (Prometheus gives up on a scrape after 10 s by default).
SCRAPE_DB_TIMEOUT_S = 2.0
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def check(settings: Settings) -> None:
    """Refuse metric settings that cannot work, with the variable to fix (ValueError)."""
    if settings.metrics not in MODES:
        raise ValueError(
            f"CLUBFEED_METRICS is {settings.metrics!r}; use one of {', '.join(MODES)}."
        )
    if settings.metrics == "token" and len(settings.metrics_token or "") < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"CLUBFEED_METRICS=token needs CLUBFEED_METRICS_TOKEN of at least "
            f"{MIN_TOKEN_LENGTH} characters (for instance: openssl rand -hex 32)."
        )


class Meter:
    """What the app reports; this base records nothing (metrics off)."""

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request answered on `route` (a template) with `status`."""

    def served(self, resource: str, count: int) -> None:
        """`count` records (tombstones included) returned to a reader."""

    def written(self, resource: str, counts: dict[str, int]) -> None:
        """A committed write's records by outcome (created, updated, unchanged, deleted)."""

    def rejected(self, resource: str, problem: str) -> None:
        """A write refused with problem type `problem` (its slug)."""

    def activity_dropped(self, count: int) -> None:
        """`count` buffered API activity events could not be written and were dropped."""

    def pool_class(self) -> type[QueuePool] | None:
        """The pool class for the engine (None: SQLAlchemy's default)."""
        return None

    def watch(self, engine: Engine) -> None:
        """Follow `engine`'s pool: connections in use."""

    def show_sources(self, database_url: str) -> None:
        """Show the source runners' state, read from the database at each scrape."""

    def close(self) -> None:
        """The process is stopping: its live gauges no longer count."""


class Prometheus(Meter):
    """Meter that records into prometheus-client, in one process or across workers."""

    def __init__(self, settings: Settings, multiprocess_dir: str | None) -> None:
        self.settings = settings
        self.multiprocess_dir = multiprocess_dir
        # In multiprocess mode values live in files, not in a registry: a registry would
        # show this worker's values beside the sum, so the metrics join none.
        self.registry = None if multiprocess_dir else CollectorRegistry()
        live: dict[str, Any] = {"registry": self.registry, "multiprocess_mode": "livesum"}
        self._duration = self._add(
            Histogram,
            "clubfeed_http_request_duration_seconds",
            "Time from request to the end of the response, by route template.",
            ("method", "route", "status"),
            buckets=DURATION_BUCKETS,
        )
        self._rate_limited = self._add(
            Counter,
            "clubfeed_http_rate_limited",
            "Responses with status 429, by route template.",
            ("route",),
        )
        self._served = self._add(
            Counter, "clubfeed_records_served", "Records returned to readers.", ("resource",)
        )
        self._written = self._add(
            Counter,
            "clubfeed_records_written",
            "Records in committed writes, by outcome (unchanged ones are not stored again).",
            ("resource", "outcome"),
        )
        self._rejected = self._add(
            Counter,
            "clubfeed_ingest_rejections",
            "Writes refused, by problem type.",
            ("resource", "problem"),
        )
        self._dropped = self._add(
            Counter,
            "clubfeed_activity_events_dropped",
            "API activity events that could not be written to the database.",
            (),
        )
        self._in_use = Gauge("clubfeed_db_pool_in_use", "Database connections checked out.", **live)
        self._waiting = Gauge(
            "clubfeed_db_pool_waiting",
            "Threads asking the pool for a connection and not yet given one.",
            **live,
        )
        self._children: dict[tuple[str, str, int], Any] = {}
        self._sources: SourceCollector | None = None

    def _add(
        self,
        kind: type[MetricWrapperBase],
        name: str,
        documentation: str,
        labels: tuple[str, ...],
        **options: Any,
    ) -> Any:
        return kind(name, documentation, labels, registry=self.registry, **options)

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            # labels() takes a lock and builds a tuple; keep each child once.
            child = self._children[key] = self._duration.labels(method, route, str(status))
        child.observe(seconds)
        if status == 429:
            self._rate_limited.labels(route).inc()

    def served(self, resource: str, count: int) -> None:
        self._served.labels(resource).inc(count)

    def written(self, resource: str, counts: dict[str, int]) -> None:
        for outcome, count in counts.items():
            self._written.labels(resource, outcome).inc(count)

    def rejected(self, resource: str, problem: str) -> None:
        self._rejected.labels(resource, problem).inc()

    def activity_dropped(self, count: int) -> None:
        self._dropped.inc(count)

    def pool_class(self) -> type[QueuePool]:
        waiting = self._waiting

        class WatchedPool(QueuePool):
            """A QueuePool that counts the threads inside checkout."""

            # Log under SQLAlchemy's pool logger (WARNING unless asked), not as this module.
            _sqla_logger_namespace = "sqlalchemy.pool.impl.QueuePool"

            def connect(self) -> PoolProxiedConnection:
                waiting.inc()
                try:
                    return super().connect()
                finally:
                    waiting.dec()

        return WatchedPool

    def watch(self, engine: Engine) -> None:
        pool = engine.pool
        # SQLAlchemy pairs every checkout with a checkin, invalidated connections included.
        event.listen(pool, "checkout", lambda *_args: self._in_use.inc())
        event.listen(pool, "checkin", lambda *_args: self._in_use.dec())

    def show_sources(self, database_url: str) -> None:
        # Its own connection, never the app's pool: when the pool is exhausted is when an
        # operator most needs the page, and a scrape must not queue behind the requests.
        engine = make_engine(database_url, pool_size=1, timeout_s=SCRAPE_DB_TIMEOUT_S)
        self._sources = SourceCollector(engine)
        if self.registry is not None:
            self.registry.register(self._sources)

    def close(self) -> None:
        if self._sources is not None:
            self._sources.engine.dispose()
        if self.multiprocess_dir:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]

    def exposition(self) -> bytes:
        """Every metric, summed over the workers in multiprocess mode."""
        if self.multiprocess_dir is None:
            assert self.registry is not None
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        if self._sources is not None:
            registry.register(self._sources)
        return generate_latest(registry)


class SourceCollector(Collector):
    """The source runners' figures, read from their state tables when `/metrics` is asked.

    A runner (`clubfeed source run`) is its own process, often on another host, so
    its state is in the database, not in this process. Labels are the mapping's name
    and the resource, never a business: counts are summed over a mapping's businesses.
    It reads on a connection of its own, so an exhausted pool does not hold up the page;
    with the database unreachable the page still answers, without these figures.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> list[Metric]:
        return []  # read at scrape time: nothing to check at registration

    def collect(self) -> list[Metric]:
        from clubfeed.sources import state
        from clubfeed.storage.engine import read_connection

        try:
            with read_connection(self.engine) as conn:
                seen = state.overview(conn)
        except SQLAlchemyError:
            return []
        now = now_us()
        keys = ["mapping", "resource"]
        records = CounterMetricFamily(
            "clubfeed_source_records",
            "Source rows written, by outcome (unchanged: read again, not stored again).",
            labels=[*keys, "outcome"],
        )
        for (mapping, resource), outcomes in seen.counts.items():
            for outcome, count in outcomes.items():
                records.add_metric([mapping, resource, outcome], count)
        gauges = {
            name: GaugeMetricFamily(f"clubfeed_source_{name}", text, labels=keys)
            for name, text in _SOURCE_GAUGES.items()
        }
        for row in seen.cursors:
            labels = [row["mapping"], row["resource"]]
            gauges["backfilling"].add_metric(labels, 1 if row["phase"] == "backfill" else 0)
            gauges["failing"].add_metric(labels, 1 if row["last_error"] else 0)
            gauges["fixed_lag"].add_metric(labels, 1 if row["guarantee"] == "fixed lag" else 0)
            if row["caught_up_at"] is not None and row["phase"] == "follow":
                gauges["lag_seconds"].add_metric(labels, (now - row["caught_up_at"]) / 1e6)
            held = row["held_since"]
            gauges["held_seconds"].add_metric(labels, 0 if held is None else (now - held) / 1e6)
            if row["reconciled_at"] is not None and row["reconcile_seconds"] is not None:
                gauges["reconcile_seconds"].add_metric(labels, row["reconcile_seconds"] / 1000)
                gauges["last_reconcile_timestamp_seconds"].add_metric(
                    labels, row["reconciled_at"] / 1e6
                )
        problems = GaugeMetricFamily(
            "clubfeed_source_problems",
            "Source rows set aside, by kind: value (waits for the row to change), reference "
            "(retried each poll), tenant.",
            labels=[*keys, "kind"],
        )
        for (mapping, resource, kind), count in seen.problems.items():
            problems.add_metric([mapping, resource, kind], count)
        return [records, *gauges.values(), problems]


_SOURCE_GAUGES = {
    "lag_seconds": "Seconds since the resource's last poll caught up with the source.",
    "backfilling": "1 while the resource's backfill runs.",
    "failing": "1 while the resource's reads or writes fail (its last error is in status).",
    "fixed_lag": "1 when the source account cannot see open transactions (fixed lag).",
    "held_seconds": "Seconds an open source transaction has held the watermark back (0: none).",
    "reconcile_seconds": "How long the last completed reconcile pass took.",
    "last_reconcile_timestamp_seconds": "When the last completed reconcile pass began (Unix time).",
}


def meter(settings: Settings) -> Meter:
    """The meter the settings ask for."""
    check(settings)
    if settings.metrics == "off":
        return Meter()
    return Prometheus(settings, settings.metrics_dir)


def endpoint(prometheus: Prometheus) -> Callable[[Request], Response]:
    """The `/metrics` page, answered only to the callers the settings allow."""
    token = (prometheus.settings.metrics_token or "").encode()
    by_token = prometheus.settings.metrics == "token"

    def metrics(request: Request) -> Response:
        if by_token:
            presented = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(presented, b"Bearer " + token):
                return problem_response(
                    401,
                    "Unauthenticated",
                    "/metrics needs Authorization: Bearer with the CLUBFEED_METRICS_TOKEN.",
                    slug="unauthenticated",
                    headers={"WWW-Authenticate": 'Bearer realm="clubfeed-metrics"'},
                )
        elif not _loopback(request):
            return problem_response(
                403,
                "Forbidden",
                "/metrics answers only on loopback; set CLUBFEED_METRICS=token to scrape "
                "it from elsewhere with a bearer token.",
                slug="forbidden",
            )
        return Response(prometheus.exposition(), media_type=CONTENT_TYPE_LATEST)

    return metrics


def _loopback(request: Request) -> bool:
    """Whether the client, as uvicorn sees it after trusted proxy headers, is on loopback."""
    if request.client is None:
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False
