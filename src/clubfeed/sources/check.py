"""`clubfeed source check`: what a mapping would do, shown on a few rows, writing nothing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy.exc import SQLAlchemyError

from clubfeed.catalogue import SERVER_FIELDS
from clubfeed.sources import convert
from clubfeed.sources.convert import BadValue, ColumnsProblem
from clubfeed.sources.database import SourceDB, describe_failure, safe_url
from clubfeed.sources.mapping import MappingFile
from clubfeed.sources.parallel import PARALLEL_FROM_PAGES

SAMPLE_ROWS = 3

_GRANTS = {
    "postgresql": "GRANT pg_read_all_stats TO the source account",
    "mysql": "GRANT PROCESS ON *.* TO the source account",
    "sqlite": "SQLite shows no other connection's transactions",
}


@dataclass
class ResourceCheck:
    resource: str
    ok: bool
    reconcile_s: float
    problem: str | None = None
    fields: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)
    row_problems: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    mapping: str
    source: str  # the URL without its password
    dialect: str
    sees_transactions: bool
    guarantee: str
    settings: dict[str, float]
    resources: list[ResourceCheck]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.resources)


def guarantee_text(mapping: MappingFile, dialect: str, visible: bool) -> str:
    """What the runner promises with this account, said for a person."""
    margin = mapping.source.clock_margin_s
    if visible:
        return (
            "The account sees other sessions' open transactions: the watermark never passes "
            f"a transaction still open, so a row committed late is read at the next poll "
            f"(stamps may run up to {margin:g} s ahead of the database clock)."
        )
    lag = mapping.source.fixed_lag_s
    return (
        "The account cannot see other sessions' open transactions, so the watermark trails "
        f"the source's clock by fixed_lag ({lag:g} s): a row whose transaction stays open "
        f"longer than that after stamping it is found by the next reconcile instead of the "
        f"next poll. To close that gap: {_GRANTS[dialect]}."
    )


def settings_of(mapping: MappingFile) -> dict[str, float]:
    """The source settings the runner will use, defaults included, so `check` shows them
    (all but the URL, which the report shows without its password)."""
    settings = dataclasses.asdict(mapping.source)
    del settings["url"]
    return settings


def settings_text(mapping: MappingFile) -> str:
    """How the runner will read, said for a person."""
    source = mapping.source
    workers = (
        f"a backfill of more than {PARALLEL_FROM_PAGES} batches is written by "
        f"{source.backfill_workers} worker processes"
        if source.backfill_workers > 1
        else "backfills are written by the runner alone"
    )
    return (
        f"Polls every {span(source.poll_interval_s)} and reads and writes "
        f"{source.batch_size:,} rows a batch; {workers}."
    )


def span(seconds: float) -> str:
    """A duration as a person writes it: 0.2 s, 30 min, 24 h, 7 d."""
    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g} d"
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def check(mapping: MappingFile, source: SourceDB) -> CheckReport:
    """Run each query on a few rows and map them; problems are reported, never raised."""
    visible = source.can_see_transactions()
    report = CheckReport(
        mapping=mapping.name,
        source=safe_url(mapping.source.url),
        dialect=source.dialect,
        sees_transactions=visible,
        guarantee=guarantee_text(mapping, source.dialect, visible),
        settings=settings_of(mapping),
        resources=[],
    )
    for resource_mapping in mapping.resources:
        name = resource_mapping.resource.name
        try:
            rows = source.sample(resource_mapping, SAMPLE_ROWS)
            plan = convert.layout(resource_mapping, rows, mapping.tenancy.column)
        except (SQLAlchemyError, ColumnsProblem) as exc:
            problem = describe_failure(exc)
            report.resources.append(
                ResourceCheck(name, False, resource_mapping.reconcile_s, problem)
            )
            continue
        result = ResourceCheck(
            name,
            True,
            resource_mapping.reconcile_s,
            fields=[f for _, f, _ in plan.fields],
            extra=[c for _, c, _ in plan.extra],
        )
        for row in rows.rows:
            item = convert.draft(resource_mapping, plan, row)
            if item.problem is not None:
                result.row_problems.append(f"key {item.key!r}: {item.problem.detail}")
                continue
            if item.deleted:
                result.sample.append({"id": item.record_id, "deleted": True})
                continue
            try:
                location = item.fields.get("location_id")
                zones = {location: ZoneInfo("UTC")} if item.waiting and location else {}
                record = convert.record(resource_mapping, item, zones)
            except BadValue as exc:
                result.row_problems.append(f"key {item.key!r}: {exc.detail}")
                continue
            shown = msgspec.to_builtins(record)
            for name in item.waiting:  # the location's zone is applied when written
                shown[name] = f"{item.fields[name].isoformat()} (local time at the location)"
            result.sample.append(
                {k: v for k, v in shown.items() if v is not None and k not in SERVER_FIELDS}
            )
        report.resources.append(result)
    return report
