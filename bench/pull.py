"""`clubfeed pull` of the measured business's check-ins into SQLite, against a bare loop.

The baseline is the least an integrator's loop can do: httpx with compression on (the
client's defaults: zstd, br, gzip) pages through the complete transfer by following each
page's `Link: rel="next"`, reads and decompresses every body, and throws it away. The
pull is the reference poller's own function (`client.pull.pull_once`) into a fresh
SQLite file: the same pages, decoded into rows and written. Rounds are interleaved,
and the medians compared, so the machine's noise falls on both alike.

Then `clubfeed pull --follow` runs as its own process with the default interval, and
single check-ins are written through the API at random moments: the latency is from the
write's answer to the row in the follower's copy.
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.client import BenchError
from clubfeed.client import Client
from clubfeed.client.mirror import Mirror
from clubfeed.client.pull import pull_once

ROUNDS = 2
RESOURCE = "checkins"
FOLLOW_CHANGES = 30
CLUBFEED = Path(sys.executable).parent / "clubfeed"


@dataclass(frozen=True)
class PullResult:
    records: int
    baseline_s: list[float]
    pull_s: list[float]
    follow_s: list[float]  # from a write's answer to its row in a --follow copy

    @property
    def baseline_records_per_s(self) -> float:
        return self.records / statistics.median(self.baseline_s)

    @property
    def pull_records_per_s(self) -> float:
        return self.records / statistics.median(self.pull_s)

    @property
    def ratio(self) -> float:
        return self.pull_records_per_s / self.baseline_records_per_s

    @property
    def follow_p50_s(self) -> float:
        return statistics.median(self.follow_s)

    @property
    def follow_p99_s(self) -> float:
        return statistics.quantiles(self.follow_s, n=100, method="inclusive")[98]


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


def _copied(copy: Path, record_id: str) -> bool:
    try:
        with closing(sqlite3.connect(copy, timeout=5)) as conn:
            found = conn.execute("SELECT 1 FROM checkins WHERE id = ?", (record_id,)).fetchall()
    except sqlite3.OperationalError:  # the follower has not made its tables yet
        return False
    return bool(found)


def _follow(
    base_url: str, integrator_key: str, token: str, ingest_key: str, copy: Path
) -> list[float]:
    """Seconds from each write's answer until the follower's copy holds it."""
    copy.unlink(missing_ok=True)
    env = {**os.environ, "CLUBFEED_INTEGRATOR_KEY": integrator_key, "CLUBFEED_TOKEN": token}
    command = [str(CLUBFEED), "pull", base_url, "--resource", RESOURCE, "--to", f"sqlite:///{copy}"]
    follower = subprocess.Popen(
        [*command, "--follow", "--json"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    writer = {"Authorization": f"Bearer {ingest_key}"}
    chooser = random.Random(7)
    latencies: list[float] = []
    ids = [f"follow-{n:03}" for n in range(FOLLOW_CHANGES)]
    try:
        with httpx.Client(base_url=base_url, headers=writer, timeout=60) as http:
            first = http.get(f"/v1/{RESOURCE}?limit=1", headers=_reader(integrator_key, token))
            sample = first.raise_for_status().json()["data"][0]
            body = {k: sample[k] for k in ("checked_in_at", "location_id", "user_id")}
            deadline = time.monotonic() + 600
            while not _copied(copy, sample["id"]):  # the first sync, a complete transfer
                if follower.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"pull --follow stopped: {follower.stderr.read()!r}")
                time.sleep(0.1)
            for record_id in ids:
                time.sleep(chooser.uniform(0.1, 1.1))  # at a random point of the interval
                http.put(f"/v1/{RESOURCE}/{record_id}", json=body).raise_for_status()
                written = time.perf_counter()
                while not _copied(copy, record_id):
                    if time.perf_counter() - written > 30:
                        raise BenchError(f"pull --follow did not copy {record_id} in 30 s")
                    time.sleep(0.005)
                latencies.append(time.perf_counter() - written)
            http.post(
                f"/v1/{RESOURCE}/batch", json={"upsert": [], "delete": ids}
            ).raise_for_status()
    finally:
        follower.terminate()
        follower.wait(timeout=30)
    return latencies


def _reader(integrator_key: str, token: str) -> dict[str, str]:
    return {"X-Integrator-Key": integrator_key, "Authorization": f"Bearer {token}"}


def run(
    port: int, integrator_key: str, token: str, ingest_key: str, workdir: Path, expected: int
) -> PullResult:
    base_url = f"http://127.0.0.1:{port}"
    headers = _reader(integrator_key, token)
    baseline: list[float] = []
    pulls: list[float] = []
    for _ in range(ROUNDS):
        _pages, seconds = _bare(base_url, headers)
        baseline.append(seconds)
        copied, seconds = _pull(base_url, integrator_key, token, workdir / "pull-copy.db")
        if copied != expected:
            raise BenchError(f"clubfeed pull copied {copied:,} of {expected:,} check-ins")
        pulls.append(seconds)
    follow = _follow(base_url, integrator_key, token, ingest_key, workdir / "follow-copy.db")
    return PullResult(expected, baseline, pulls, follow)
