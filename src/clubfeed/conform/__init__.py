"""`clubfeed conform`: check that a server meets what a loyalty platform's poller needs.

It speaks only HTTP, so it checks any server that claims clubfeed's contract, clubfeed
included. `conform()` runs the checks in order and returns a Report: a Finding for each
(passed, failed or skipped, with the evidence), and what of the run's own records could
not be written or deleted. Checks that write (with an ingest key) use records of their
own and delete them at the end: point them at a test business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from clubfeed.conform import checks, commits
from clubfeed.conform.probe import Failed, Probe, Skipped
from clubfeed.conform.run import Check, Run

CHECKS: tuple[Check, ...] = (
    Check("credentials", "Every endpoint requires both credentials", checks.credentials),
    Check("transfer", "Complete transfer on every resource", checks.transfer),
    Check("ranges", "Modified ranges on every resource", checks.ranges),
    Check("lookup", "Lookup by id on every resource", checks.lookup),
    Check("page-size", "Pages of 10,000 records", checks.page_size, reads_seed=True),
    Check(
        "stable-order",
        "A stable order under concurrent writes",
        checks.stable_order,
        reads_seed=True,
    ),
    Check("offsets", "ISO 8601 times with offsets, everywhere", checks.offsets),
    Check(
        "local-offsets",
        "Event times in their location's offset",
        checks.local_offsets,
        reads_seed=True,
    ),
    Check("tombstones", "Deletes as tombstones in ranges", checks.tombstones),
    Check("history-gone", "410 when history cannot be served", checks.history),
    Check("lookup-limits", "Lookup limits: 1,000 ids by GET, 10,000 by POST", checks.lookup_limits),
    Check(
        "concurrent-commits",
        "No change missed or repeated under concurrent commits",
        commits.concurrent_commits,
    ),
    Check("utf8", "UTF-8 everywhere", checks.utf8, reads_seed=True),
    Check("rate-limit", "429 with Retry-After", checks.rate_limit),
)
"""In the order they run: the rate limit last, since it spends the read budget."""

IDS = tuple(c.id for c in CHECKS)


@dataclass(frozen=True)
class Finding:
    """One check's outcome: `result` is "pass", "fail" or "skip"."""

    id: str
    requirement: str
    result: Literal["pass", "fail", "skip"]
    evidence: str


@dataclass
class Report:
    """The findings; or why the run's own records could not be written; and what of them
    could not be deleted afterwards."""

    findings: list[Finding] = field(default_factory=list)
    set_up_failed: str | None = None
    left_behind: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.set_up_failed or self.left_behind) and all(
            f.result != "fail" for f in self.findings
        )


def conform(
    run: Run,
    only: frozenset[str] = frozenset(),
    starting: Callable[[Check], None] | None = None,
) -> Report:
    """Run the checks (those in `only`, if given) against the run's server; `starting` is
    told of each check as it begins. Whatever happens, the run's records are deleted."""
    chosen = [c for c in CHECKS if not only or c.id in only]
    report = Report()
    try:
        if run.writes and any(c.reads_seed for c in chosen):
            run.set_up()
        for check in chosen:
            if starting is not None:
                starting(check)
            report.findings.append(_finding(check, run))
    except Failed as exc:
        report.set_up_failed = str(exc)
    finally:
        report.left_behind = run.clean_up()
    return report


def _finding(check: Check, run: Run) -> Finding:
    try:
        return Finding(check.id, check.requirement, "pass", check.test(run))
    except Failed as exc:
        return Finding(check.id, check.requirement, "fail", str(exc))
    except Skipped as exc:
        return Finding(check.id, check.requirement, "skip", str(exc))
    except Exception as exc:  # an answer shaped so oddly that a check tripped on it
        return Finding(
            check.id,
            check.requirement,
            "fail",
            f"an answer the check could not read: {type(exc).__name__}: {exc}",
        )


__all__ = ["CHECKS", "IDS", "Finding", "Probe", "Report", "Run", "conform"]
