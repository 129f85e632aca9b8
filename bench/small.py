"""Small requests at 64 connections against a bare baseline, and what each issue-6 feature costs.

Six servers run side by side, each its own process under uvicorn with one worker and
the same loop and httptools parser: the Starlette baseline (bench/small_app.py), clubfeed
with every feature on, and clubfeed with one feature off at a time. Load comes from wrk
(Debian's package) in a process of its own, over loopback, for a bounded time. Servers are
compared in pairs (clubfeed against the baseline; all on against one feature off): each
round takes the pairs in a shuffled order and gives both servers of a pair, back to back,
a GET run, a PUT run and a few 10,000-record pages, so that drift of this shared machine
falls on both alike. Figures are medians over the rounds of each pair's ratio.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from bench import servers
from bench.client import HOST, BenchError, Http
from bench.measure import LIMIT

CONNECTIONS = 64
WRK_SCRIPT = Path(__file__).resolve().with_name("wrk.lua")
PATHS = {"get": "/v1/checkins?limit=1", "put": "/v1/checkins/"}
WORKLOADS = tuple(PATHS)
PAGE = f"/v1/checkins?limit={LIMIT}"
PAGES_PER_ROUND = 10
WARMUP_S = 2

# Buckets so large that the benchmark never empties one: the cost of asking them is measured.
UNLIMITED = "1000000/minute"
ALL_ON = {
    "CLUBFEED_METRICS": "loopback",
    "CLUBFEED_ACCESS_LOG": "1",
    "CLUBFEED_LOG_FORMAT": "json",
    "CLUBFEED_RATE_LIMIT_STORAGE": "memory://",
    "CLUBFEED_READ_RATE_LIMIT": UNLIMITED,
    "CLUBFEED_WRITE_RATE_LIMIT": UNLIMITED,
}
EDGE = "edge protocol"
# What turns each feature off; the edge protocol is turned off by bench/plain_serve.py.
FEATURES: dict[str, dict[str, str]] = {
    "metrics": {"CLUBFEED_METRICS": "off"},
    "request logs": {"CLUBFEED_ACCESS_LOG": "0"},
    "rate limits": {"CLUBFEED_READ_RATE_LIMIT": "off", "CLUBFEED_WRITE_RATE_LIMIT": "off"},
    EDGE: {},
}
BASELINE = "baseline"
ALL = "all on"
# The default buckets (6,000/minute) would refuse 64 busy connections within seconds, so
# the throughput figures are clubfeed's with every feature on but rate limits off.
THROUGHPUT = "no rate limits"


def without(feature: str) -> str:
    return f"no {feature}"


@dataclass(frozen=True)
class Load:
    """One wrk run: how many requests answered 2xx in how long, and their latency."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True)
class Pair:
    """Two servers measured back to back, in a random order, in every round."""

    name: str
    one: str
    other: str


# The throughput comparison, then each feature: everything on against it alone off.
PAIRS = (
    Pair(BASELINE, THROUGHPUT, BASELINE),
    *(Pair(feature, ALL, without(feature)) for feature in FEATURES),
)


@dataclass(frozen=True)
class Small:
    """Every round's figures: by pair, then server, then workload ("get", "put")."""

    rounds: int
    seconds: int
    loads: dict[str, dict[str, dict[str, list[Load]]]]
    # By feature, then server: each round's median 10,000-record page.
    pages_ms: dict[str, dict[str, list[float]]]

    def throughput(self, server: str, workload: str) -> Load:
        """Medians over the rounds of requests/s, p50 and p99 (requests/s as `requests`)."""
        runs = self.loads[BASELINE][server][workload]
        return Load(
            round(statistics.median(r.per_s for r in runs)),
            1.0,
            statistics.median(r.p50_ms for r in runs),
            statistics.median(r.p99_ms for r in runs),
        )

    def vs_baseline(self, workload: str) -> float:
        """clubfeed's requests/s ÷ the baseline's, the median of the rounds' ratios."""
        runs = self.loads[BASELINE]
        pairs = zip(runs[THROUGHPUT][workload], runs[BASELINE][workload], strict=True)
        return statistics.median(ours.per_s / base.per_s for ours, base in pairs)

    def cost(self, feature: str, workload: str) -> float:
        """How much longer a request takes with `feature` on: 0.05 is 5%; median of rounds."""
        off = without(feature)
        if workload == "page":
            pages = self.pages_ms[feature]
            return statistics.median(a / b for a, b in zip(pages[ALL], pages[off], strict=True)) - 1
        runs = self.loads[feature]
        loads = zip(runs[ALL][workload], runs[off][workload], strict=True)
        return statistics.median(plain.per_s / on.per_s for on, plain in loads) - 1


def wrk(port: int, workload: str, headers: Mapping[str, str], seconds: int) -> Load:
    """One wrk run of `workload` with CONNECTIONS connections; BenchError on any non-2xx.

    Requests that got no answer (`socket_errors`) count as not served.
    """
    command = ["wrk", "--threads", "1", "--connections", str(CONNECTIONS)]
    command += ["--duration", f"{seconds}s", "--timeout", "10s", "--script", str(WRK_SCRIPT)]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    command += [f"http://{HOST}:{port}{PATHS[workload]}", "--", workload]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    except FileNotFoundError:
        raise BenchError("wrk is not installed: apt-get install wrk") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise BenchError(f"wrk failed on port {port}:\n{done.stdout}{done.stderr}")
    result = json.loads(lines[-1])
    # A socket error (a request past wrk's 10 s timeout, say) is a figure; a refusal is a fault.
    if result["non_2xx"]:
        raise BenchError(f"{workload} on port {port}: {result} (see the server's log)")
    return Load(
        result["requests"],
        result["duration_us"] / 1e6,
        result["p50_us"] / 1000,
        result["p99_us"] / 1000,
    )


def _pages_ms(ports: Sequence[int], headers: Mapping[str, str]) -> list[float]:
    """Each server's median of PAGES_PER_ROUND first pages, asked of the servers in turn.

    Alternating page by page puts any drift of the machine on both servers alike. Each
    gets a new connection, since the last one idled out during the other runs.
    """
    https = [Http(port) for port in ports]
    samples: list[list[float]] = [[] for _ in ports]
    try:
        for _ in range(PAGES_PER_ROUND):
            for http, found in zip(https, samples, strict=True):
                found.append(http.timed_get(PAGE, headers)[0] * 1000)
    finally:
        for http in https:
            http.close()
    return [statistics.median(found) for found in samples]


def _start(stack: ExitStack, url: str, workdir: Path) -> dict[str, int]:
    """Every server of the comparison, running; their ports by name."""
    ports = {BASELINE: stack.enter_context(servers.small_baseline(url, workdir)).port}
    ports[ALL] = stack.enter_context(servers.clubfeed(url, workdir, "all-on", ALL_ON)).port
    for feature, off in FEATURES.items():
        name = without(feature)
        start = servers.plain_clubfeed if feature == EDGE else servers.clubfeed
        server = start(url, workdir, name.replace(" ", "-"), {**ALL_ON, **off})
        ports[name] = stack.enter_context(server).port
    return ports


def run(
    url: str,
    workdir: Path,
    read_headers: Mapping[str, str],
    ingest_key: str,
    console: Console,
    *,
    rounds: int,
    seconds: int,
    seed: int,
) -> Small:
    """Start every server on the loaded database at `url`, then the warm-up and the rounds."""
    headers = {
        "get": dict(read_headers),
        "put": {"Authorization": f"Bearer {ingest_key}", "Content-Type": "application/json"},
    }
    rng = random.Random(seed)
    loads: dict[str, dict[str, dict[str, list[Load]]]] = {
        p.name: {s: {w: [] for w in WORKLOADS} for s in (p.one, p.other)} for p in PAIRS
    }
    pages_ms: dict[str, dict[str, list[float]]] = {
        p.name: {p.one: [], p.other: []} for p in PAIRS if p.name != BASELINE
    }
    with ExitStack() as stack:
        ports = _start(stack, url, workdir)
        console.print(
            f"small requests: {len(ports)} servers in {len(PAIRS)} pairs, {CONNECTIONS} "
            f"connections, {rounds} rounds (+1 warm-up) of {seconds} s GET and PUT runs and "
            f"{PAGES_PER_ROUND} pages for each server of each pair"
        )
        for round_ in range(rounds + 1):
            started = time.monotonic()
            length = seconds if round_ else WARMUP_S
            for pair in rng.sample(PAIRS, len(PAIRS)):
                order = rng.sample((pair.one, pair.other), 2)
                for workload in WORKLOADS:
                    for name in order:
                        load = wrk(ports[name], workload, headers[workload], length)
                        if round_:
                            loads[pair.name][name][workload].append(load)
                if pair.name in pages_ms:
                    medians = _pages_ms([ports[name] for name in order], read_headers)
                    for name, page_ms in zip(order, medians, strict=True):
                        if round_:
                            pages_ms[pair.name][name].append(page_ms)
            what = f"round {round_}/{rounds}" if round_ else "warm-up"
            console.print(f"  {what} done in {time.monotonic() - started:.0f} s")
    return Small(rounds, seconds, loads, pages_ms)
