"""The small-request figures and feature costs of one backend, their targets, and their notes."""

from __future__ import annotations

from bench.small import BASELINE, CONNECTIONS, FEATURES, PAGES_PER_ROUND, THROUGHPUT, Small
from bench.targets import Target

LABELS = {"get": "GET ?limit=1", "put": "PUT one record"}
COST_LABELS = {"page": "10,000-record page", **LABELS}
MIN_VS_BASELINE = 0.5
MAX_TAIL = 10
MAX_COST_PERCENT = 10

NOTES = (
    f"Small requests: wrk (Debian's package, one thread) holds {CONNECTIONS} keep-alive "
    "connections to one server process at a time over loopback; requests/s, p50 and p99 are "
    "medians over the interleaved rounds. The PUTs cycle through 1,000 check-in ids, each "
    "changing its record.",
    "The baseline (bench/small_app.py) is a bare Starlette app on the same driver and thread "
    "pool: the same SHA-256 credential lookups, then one indexed statement (the business's "
    "first check-in by change_seq; one upsert into a table of its own), with no validation, "
    "change clock, cursor, rate limit, log or metric.",
    "clubfeed runs under `clubfeed serve` (web/serving.py's EdgeConfig) with JSON request "
    "logs and metrics on; its throughput rows have rate limits off, since the default "
    "6,000/minute buckets would refuse 64 busy connections within seconds.",
    "Feature costs: clubfeed with every feature on (rate limits as 1,000,000/minute buckets "
    "in memory, never refusing) against the same with one feature off (CLUBFEED_METRICS=off, "
    "CLUBFEED_ACCESS_LOG=0, rate limits off, or a plain uvicorn.Config for the edge protocol), "
    "measured back to back in each round; the median over rounds of how much longer a "
    f"request takes with it on (for pages, of the median of {PAGES_PER_ROUND} in each "
    "round). A negative cost is noise.",
)


def targets(small: Small) -> list[Target]:
    found = []
    for workload, label in LABELS.items():
        ratio = small.vs_baseline(workload)
        found.append(Target(f"{label} ÷ baseline (requests/s)", ratio, MIN_VS_BASELINE, False, "×"))
        load = small.throughput(THROUGHPUT, workload)
        found.append(Target(f"{label} p99 ÷ p50", load.p99_ms / load.p50_ms, MAX_TAIL, True, "×"))
    for feature in FEATURES:
        for workload, label in COST_LABELS.items():
            cost = 100 * small.cost(feature, workload)
            found.append(Target(f"cost of {feature}: {label}", cost, MAX_COST_PERCENT, True, "%"))
    return found


def figures(small: Small) -> list[tuple[str, str]]:
    rows = []
    for workload, label in LABELS.items():
        for server, who in ((THROUGHPUT, "clubfeed"), (BASELINE, "baseline")):
            load = small.throughput(server, workload)
            rows.append(
                (
                    f"{label}, {CONNECTIONS} connections: {who}, requests/s (p50 / p99)",
                    f"{load.requests:,} /s ({load.p50_ms:,.1f} / {load.p99_ms:,.1f} ms)",
                )
            )
    for feature in FEATURES:
        costs = " / ".join(f"{100 * small.cost(feature, w):+.1f}%" for w in COST_LABELS)
        rows.append((f"cost of {feature}: page / GET / PUT", costs))
    return rows


def as_json(small: Small) -> dict[str, object]:
    return {
        "rounds": small.rounds,
        "seconds_per_run": small.seconds,
        "connections": CONNECTIONS,
        "runs": {
            pair: {
                server: {
                    workload: [
                        {"requests_per_s": r.per_s, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms}
                        for r in runs
                    ]
                    for workload, runs in by_workload.items()
                }
                for server, by_workload in by_server.items()
            }
            for pair, by_server in small.loads.items()
        },
        "pages_p50_ms": small.pages_ms,
        "costs_percent": {
            feature: {w: 100 * small.cost(feature, w) for w in COST_LABELS} for feature in FEATURES
        },
    }
