"""`clubfeed pull` of the measured business's check-ins into SQLite, against a bare loop.

The baseline is the least an integrator's loop can do: httpx with compression on (the
client's defaults: zstd, br, gzip) pages through the complete transfer by following each
page's `Link: rel="next"`, reads and decompresses every body, and throws it away. The
pull is the reference poller's own function (`client.pull.pull_once`) into a fresh
SQLite file: the same pages, decoded into records and written. Rounds are interleaved,
and the medians compared, so the machine's noise falls on both alike.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.client import BenchError
from clubfeed.client import Client
from clubfeed.client.mirror import Mirror
from clubfeed.client.pull import pull_once

ROUNDS = 2
RESOURCE = "checkins"


@dataclass(frozen=True)
class PullResult:
    records: int
    baseline_s: list[float]
    pull_s: list[float]

    @property
    def baseline_records_per_s(self) -> float:
        return self.records / statistics.median(self.baseline_s)

    @property
    def pull_records_per_s(self) -> float:
        return self.records / statistics.median(self.pull_s)

    @property
    def ratio(self) -> float:
        return self.pull_records_per_s / self.baseline_records_per_s


def _bare(base_url: str, headers: dict[str, str]) -> tuple[int, float]:
    """Page through the complete transfer and throw the pages away: (pages, seconds)."""
    started = time.perf_counter()
    pages = 0
    with httpx.Client(base_url=base_url, headers=headers, timeout=600) as http:
        url: str | None = f"/v1/{RESOURCE}?limit=10000"
        while url is not None:
            response = http.get(url)
            response.raise_for_status()
            response.read()
            pages += 1
            url = response.links.get("next", {}).get("url")
    return pages, time.perf_counter() - started


def _pull(base_url: str, integrator_key: str, token: str, copy: Path) -> tuple[int, float]:
    copy.unlink(missing_ok=True)
    mirror = Mirror(f"sqlite:///{copy}")
    try:
        with Client(base_url, integrator_key=integrator_key, token=token) as client:
            started = time.perf_counter()
            pulled = pull_once(client, mirror, RESOURCE)
            seconds = time.perf_counter() - started
    finally:
        mirror.close()
    return pulled.copy, seconds


def run(port: int, integrator_key: str, token: str, workdir: Path, expected: int) -> PullResult:
    base_url = f"http://127.0.0.1:{port}"
    headers = {"X-Integrator-Key": integrator_key, "Authorization": f"Bearer {token}"}
    baseline: list[float] = []
    pulls: list[float] = []
    for _ in range(ROUNDS):
        _pages, seconds = _bare(base_url, headers)
        baseline.append(seconds)
        copied, seconds = _pull(base_url, integrator_key, token, workdir / "pull-copy.db")
        if copied != expected:
            raise BenchError(f"clubfeed pull copied {copied:,} of {expected:,} check-ins")
        pulls.append(seconds)
    return PullResult(expected, baseline, pulls)
