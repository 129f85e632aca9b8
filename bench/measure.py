"""The timed parts: single pages, complete transfers, and concurrent readers."""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bench.client import BenchError, Http, decode_page

LIMIT = 10_000
WARMUP = 3


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0–100), interpolated between the nearest ranks."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Spread:
    """p50 and p95 of a list of durations, in milliseconds."""

    samples_ms: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p95(self) -> float:
        return percentile(self.samples_ms, 95)


def interleaved(
    probes: Mapping[str, Callable[[], float]], runs: int, seed: int
) -> dict[str, Spread]:
    """Each probe (returning seconds) run `runs` times, in a shuffled order every round.

    Interleaving spreads any drift of the machine (other work, caches, autovacuum)
    evenly over the variants instead of loading it onto one of them.
    """
    rng = random.Random(seed)
    names = list(probes)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(WARMUP + runs):
        rng.shuffle(names)
        for name in names:
            seconds = probes[name]()
            if round_ >= WARMUP:
                samples[name].append(seconds * 1000)
    return {name: Spread(values) for name, values in samples.items()}


@dataclass
class Transfer:
    """One complete transfer: its records, time, per-request latencies, and cursors met."""

    records: int = 0
    seconds: float = 0.0
    request_ms: list[float] = field(default_factory=list)
    cursors: list[str] = field(default_factory=list)

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds


def transfer(port: int, headers: Mapping[str, str], path: str = "/v1/checkins") -> Transfer:
    """Follow next_cursor from the first page to the last, decoding each page as a reader must."""
    http = Http(port)
    result = Transfer()
    cursor: str | None = None
    started = time.perf_counter()
    try:
        while True:
            query = f"?limit={LIMIT}" + (f"&cursor={cursor}" if cursor else "")
            seconds, body = http.timed_get(path + query, headers)
            result.request_ms.append(seconds * 1000)
            page = decode_page(body)
            result.records += len(page.data)
            cursor = page.next_cursor
            if cursor is None:
                break
            result.cursors.append(cursor)
    finally:
        http.close()
    result.seconds = time.perf_counter() - started
    return result


@dataclass(frozen=True)
class Concurrent:
    readers: int
    records: int
    seconds: float
    request_ms: list[float]

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds


def concurrent_transfers(port: int, headers: Mapping[str, str], readers: int) -> Concurrent:
    """`readers` complete transfers at once, one thread and connection each, started together.

    Threads suffice: each spends its time waiting on its socket, where the GIL is released.
    """
    barrier = threading.Barrier(readers + 1)
    results: list[Transfer] = []
    errors: list[BaseException] = []

    def reader() -> None:
        barrier.wait()
        try:
            results.append(transfer(port, headers))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(readers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise BenchError(f"a concurrent reader failed: {errors[0]!r}") from errors[0]
    return Concurrent(
        readers,
        sum(r.records for r in results),
        seconds,
        [ms for r in results for ms in r.request_ms],
    )
