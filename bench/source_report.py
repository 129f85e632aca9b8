"""The source benchmark's figures and targets: rich tables, JSON, and README markdown."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from bench.sources import BACKFILL_STEPS, COMMITS_PER_S, DRIFT, FOLLOW_S, SourceOutcome
from bench.targets import Target

NOTES = (
    "Source benchmark (bench/sources.py): a POS database of clubs, members (one per 20 "
    "visits) and visits, shaped as in the README's example mapping, read with that mapping "
    "and its defaults (1 s poll, 1 s clock margin, 10,000-row pages).",
    "Backfill: every resource's backfill in the benchmark's process, from the first page "
    "read to the last written; its one wait for open source transactions (2 × clock "
    "margin) is shown apart. Bulk load: every check-in as the backfill stored it "
    "(all of them: on SQLite a sample loads faster than the whole), loaded into an empty table of the same shape and indexes in one "
    "transaction (COPY on PostgreSQL, one executemany on SQLite).",
    f"Follow: `clubfeed source run` in its own process; the POS app commits one new visit "
    f"at a time, {COMMITS_PER_S} a second for {FOLLOW_S:.0f} s; an integrator's poller in "
    "the benchmark's process runs the feed's range query from its last consistent_until "
    "every 20 ms. Lag: from the commit returning to the poll that first returns the record.",
    f"Reconcile: after {DRIFT} visits were hard-deleted and {DRIFT} changed without a new "
    "updated_at, one reconcile pass over the visits, in the benchmark's process; it must "
    "repair and delete exactly those, and leave clubfeed with the source's visits.",
    "The second store of each source reads the source as the first run left it (a few "
    "thousand visits more, a few hundred fewer or changed).",
)


def name(outcome: SourceOutcome) -> str:
    return f"{outcome.source} → {outcome.store}"


def targets(outcome: SourceOutcome) -> list[Target]:
    follow = outcome.follow
    return [
        Target("backfill ÷ bulk load", outcome.backfill.ratio, 0.3, False, "×"),
        Target("follow lag p50", follow.quantile(0.5), 2.0, True, "s"),
        Target("follow lag p99", follow.quantile(0.99), 5.0, True, "s"),
    ]


def figures(outcome: SourceOutcome) -> list[tuple[str, str]]:
    b, f, r = outcome.backfill, outcome.follow, outcome.reconcile
    rows = [
        ("backfill records", f"{b.records:,}"),
        ("backfill", f"{b.seconds:,.1f} s, {b.records_per_s:,.0f} records/s"),
        ("wait for open transactions", f"{b.wait_s:,.1f} s"),
        ("bulk load of the check-ins", f"{b.baseline.records_per_s:,.0f} records/s"),
        ("backfill ÷ bulk load", f"{b.ratio:.2f}×"),
    ]
    rows += [
        (f"backfill: {step}", f"{b.us_per_record(step):,.1f} µs/record") for step in BACKFILL_STEPS
    ]
    rows += [
        ("follow commits", f"{f.commits:,} at {f.commits_per_s:,.0f}/s"),
        ("follow lag p50 / p99 / max", f"{f.quantile(0.5):.2f} / {f.quantile(0.99):.2f} / {max(f.lags_s):.2f} s"),
        ("reconcile pass", f"{r.seconds:,.1f} s over {r.rows:,} rows ({r.rows / r.seconds:,.0f} rows/s)"),
        ("reconcile repaired / deleted", f"{r.repaired} / {r.deleted}"),
    ]  # fmt: skip
    return rows


def _mark(met: bool) -> str:
    return "[green]met[/]" if met else "[red]missed[/]"


def print_outcome(console: Console, outcome: SourceOutcome) -> None:
    table = Table(title=f"source {name(outcome)}", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, value in figures(outcome):
        table.add_row(label, value)
    for target in targets(outcome):
        table.add_row(
            f"target: {target.name}",
            f"{target.text(target.measured)} ({target.goal_text}) {_mark(target.met)}",
        )
    console.print(table)


def as_json(outcome: SourceOutcome) -> dict[str, object]:
    b, f, r = outcome.backfill, outcome.follow, outcome.reconcile
    return {
        "source": outcome.source,
        "store": outcome.store,
        "backfill": {
            "records": b.records,
            "seconds": b.seconds,
            "records_per_s": b.records_per_s,
            "wait_s": b.wait_s,
            "bulk_load_rows": b.baseline.rows,
            "bulk_load_records_per_s": b.baseline.records_per_s,
            "ratio": b.ratio,
            "us_per_record": {step: b.us_per_record(step) for step in BACKFILL_STEPS},
        },
        "follow": {
            "commits": f.commits,
            "commits_per_s": f.commits_per_s,
            "lag_p50_s": f.quantile(0.5),
            "lag_p99_s": f.quantile(0.99),
            "lag_max_s": max(f.lags_s),
        },
        "reconcile": {
            "rows": r.rows,
            "seconds": r.seconds,
            "repaired": r.repaired,
            "deleted": r.deleted,
        },
        "targets": [
            {"name": t.name, "measured": t.measured, "goal": t.goal, "met": t.met}
            for t in targets(outcome)
        ],
    }


def markdown(outcomes: list[SourceOutcome]) -> list[str]:
    """One column per source → store."""
    lines = ["| | " + " | ".join(name(o) for o in outcomes) + " |"]
    lines.append("|---|" + "---:|" * len(outcomes))
    values = [dict(figures(o)) for o in outcomes]
    for label, _ in figures(outcomes[0]):
        lines.append(f"| {label} | " + " | ".join(v[label] for v in values) + " |")
    checks = [targets(o) for o in outcomes]
    for i, target in enumerate(checks[0]):
        cells = [
            f"{c[i].text(c[i].measured)} ({c[i].goal_text}) {'met' if c[i].met else '**missed**'}"
            for c in checks
        ]
        lines.append(f"| target: {target.name} | " + " | ".join(cells) + " |")
    lines += [""] + [f"- {note}" for note in NOTES]
    return lines
