"""`clubfeed conform`: check that a server meets what a loyalty platform's poller needs.

It speaks only HTTP, so it checks any server that claims clubfeed's contract, clubfeed
included. `conform()` runs the checks in order and returns a Finding for each: passed,
failed or skipped, with the evidence. Checks that write (with an ingest key) use records
of their own and delete them at the end: point them at a test business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clubfeed.conform import checks, commits
from clubfeed.conform.probe import Failed, Probe, Skipped
from clubfeed.conform.run import Check, Run

CHECKS: tuple[Check, ...] = (
    Check("credentials", "Every endpoint requires both credentials", checks.credentials),
    Check("transfer", "Complete transfer on every resource", checks.transfer),
    Check("ranges", "Modified ranges on every resource", checks.ranges),
    Check("lookup", "Lookup by id on every resource", checks.lookup),
    Check("page-size", "Pages of 10,000 records", checks.page_size),
    Check("stable-order", "A stable order under concurrent writes", checks.stable_order),
    Check("offsets", "ISO 8601 times with offsets, everywhere", checks.offsets),
    Check("local-offsets", "Event times in their location's offset", checks.local_offsets),
    Check("tombstones", "Deletes as tombstones in ranges", checks.tombstones),
    Check("history-gone", "410 when history cannot be served", checks.history),
    Check("lookup-limits", "Lookup limits: 1,000 ids by GET, 10,000 by POST", checks.lookup_limits),
    Check(
        "concurrent-commits",
        "No change missed or repeated under concurrent commits",
        commits.concurrent_commits,
    ),
    Check("utf8", "UTF-8 everywhere", checks.utf8),
    Check("rate-limit", "429 with Retry-After", checks.rate_limit),
)
"""In the order they run: the rate limit last, since it spends the read budget."""

IDS = tuple(c.id for c in CHECKS)


@dataclass(frozen=True)
class Finding:
    """One check's outcome: `result` is "pass", "fail" or "skip"."""

    id: str
    requirement: str
    result: str
    evidence: str


def conform(
    run: Run,
    only: frozenset[str] = frozenset(),
    starting: Callable[[Check], None] | None = None,
) -> list[Finding]:
    """Run the checks (those in `only`, if given) against the run's server; `starting` is
    told of each check as it begins. Raises Failed if the run's own records cannot be written."""
    findings = []
    run.set_up()
    try:
        for check in CHECKS:
            if only and check.id not in only:
                continue
            if starting is not None:
                starting(check)
            try:
                found = Finding(check.id, check.requirement, "pass", check.test(run))
            except Failed as exc:
                found = Finding(check.id, check.requirement, "fail", str(exc))
            except Skipped as exc:
                found = Finding(check.id, check.requirement, "skip", str(exc))
            findings.append(found)
    finally:
        run.clean_up()
    return findings


__all__ = ["CHECKS", "IDS", "Finding", "Probe", "Run", "conform"]
