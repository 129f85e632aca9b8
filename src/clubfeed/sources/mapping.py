"""The mapping file: which source database, which businesses, and one query per resource.

A broken file is refused as a whole, before anything connects, with the line of the
problem and what to write instead (`MappingError`). `${VAR}` in any value is read from
the environment, so secrets stay out of the file.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

from clubfeed import catalogue
from clubfeed.catalogue import Resource
from clubfeed.timefmt import is_timezone

DEFAULT_BATCH = 10_000
MAX_WORKERS = 16
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Path_ = tuple[str, ...]
T = TypeVar("T")


class MappingError(Exception):
    """A mapping file that cannot be used: where (`line`, 1-based, if known), what, and the fix."""

    def __init__(self, file: str, line: int | None, problem: str) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {problem}")
        self.file = file
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class SourceSettings:
    url: str
    poll_interval_s: float
    clock_margin_s: float
    fixed_lag_s: float
    batch_size: int
    backfill_workers: int = 2


@dataclass(frozen=True)
class Tenancy:
    """Whose rows are whose: one business for every row, or a tenant column mapped to businesses."""

    business_id: int | None = None
    column: str | None = None
    businesses: AnyMapping[str, int] | None = None
    name_query: str | None = None


@dataclass(frozen=True)
class ResourceMapping:
    """One resource's query and how to read it.

    `naive_datetimes` is "location", or an IANA zone ("UTC" by default). A resource
    with `delete_column` turns rows where it is set into tombstones; every resource is
    compared in full with the source every `reconcile_s` (hard deletes, content drift).
    """

    resource: Resource
    query: str
    key: str
    modified: str
    delete_column: str | None
    naive_datetimes: str
    strict: bool
    reconcile_s: float
    line: int | None = None

    @property
    def control_columns(self) -> frozenset[str]:
        """Columns that steer the reading and are not copied into `extra`."""
        names = {self.modified}
        if self.delete_column is not None:
            names.add(self.delete_column)
        if self.key != "id":
            names.add(self.key)
        return frozenset(names)


@dataclass(frozen=True)
class MappingFile:
    name: str
    path: str
    source: SourceSettings
    tenancy: Tenancy
    resources: tuple[ResourceMapping, ...]

    def for_resource(self, name: str) -> ResourceMapping | None:
        return next((m for m in self.resources if m.resource.name == name), None)


class _Deletes(msgspec.Struct, forbid_unknown_fields=True):
    column: str | None = None
    reconcile: str | float | None = None


class _ResourceSpec(msgspec.Struct, forbid_unknown_fields=True):
    query: str
    modified: str
    key: str = "id"
    deletes: _Deletes | None = None
    naive_datetimes: str | None = None
    strict: bool = False
    reconcile: str | float | None = None


class _Source(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    poll_interval: str | float = "1s"
    clock_margin: str | float = "1s"
    fixed_lag: str | float = "1m"
    batch_size: int = DEFAULT_BATCH
    backfill_workers: int = 2
    naive_datetimes: str = "UTC"
    reconcile: str | float = "24h"


class _CreateMissing(msgspec.Struct, forbid_unknown_fields=True):
    name_query: str


class _Business(msgspec.Struct, forbid_unknown_fields=True):
    id: int | None = None
    column: str | None = None
    businesses: dict[str, int] | None = None
    create_missing: _CreateMissing | None = None


class _File(msgspec.Struct, forbid_unknown_fields=True):
    source: dict[str, Any]
    business: dict[str, Any]
    resources: dict[str, Any]
    name: str | None = None


class _Lines:
    """The line of every key and value in the YAML document, by path."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.lines: dict[Path_, int] = {}
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: Path_) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = (*path, str(key.value))
                self.lines[here] = key.start_mark.line + 1
                self._walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._walk(item, (*path, str(index)))

    def of(self, path: Path_) -> int | None:
        """The line of `path`, or of the nearest enclosing key the file has."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


class _Reader:
    """Turns the parsed document into a MappingFile, naming the line of each problem."""

    def __init__(self, file: str, lines: _Lines, environ: AnyMapping[str, str]) -> None:
        self.file = file
        self.lines = lines
        self.environ = environ

    def fail(self, path: Path_, problem: str) -> MappingError:
        return MappingError(self.file, self.lines.of(path), problem)

    def convert(self, value: Any, kind: type[T], path: Path_) -> T:
        try:
            return msgspec.convert(value, kind)
        except msgspec.ValidationError as exc:
            detail, _, where = str(exc).partition(" - at `$")
            inner = tuple(s for s in re.split(r"[.\[\]`]+", where) if s)
            unknown = re.match(r"Object contains unknown field `(.+)`", detail)
            missing = re.match(r"Object missing required field `(.+)`", detail)
            if unknown:
                at = (*path, *inner, unknown.group(1))
                known = [f for f in getattr(kind, "__struct_fields__", ())]
                hint = _did_you_mean(unknown.group(1), known)
                raise self.fail(at, f"unknown key {unknown.group(1)!r}{hint}") from None
            if missing:
                at = (*path, *inner)
                where_text = ".".join(at) or "the file"
                raise self.fail(at, f"{where_text} needs {missing.group(1)!r}") from None
            at = (*path, *inner)
            raise self.fail(at, f"{'.'.join(at)}: {detail.lower()}") from None

    def expand(self, value: Any, path: Path_) -> Any:
        """`${VAR}` in strings from the environment, everywhere in the document."""
        if isinstance(value, str):

            def variable(found: re.Match[str]) -> str:
                name = found.group(1)
                if name not in self.environ:
                    raise self.fail(
                        path,
                        f"${{{name}}} is not set in the environment; export {name} "
                        "(the value stays out of this file)",
                    )
                return self.environ[name]

            return _VARIABLE.sub(variable, value)
        if isinstance(value, dict):
            return {k: self.expand(v, (*path, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand(v, (*path, str(i))) for i, v in enumerate(value)]
        return value

    def duration(self, value: str | float, path: Path_, *, positive: bool = True) -> float:
        if isinstance(value, bool):
            raise self.fail(path, f"{'.'.join(path)} is a duration, like 1s, 500ms, 5m or 1h")
        if isinstance(value, (int, float)):
            seconds = float(value)
        else:
            found = _DURATION.match(value)
            if found is None:
                raise self.fail(
                    path,
                    f"{'.'.join(path)}: {value!r} is not a duration; write one like 1s, 500ms, 5m or 1h",
                )
            seconds = float(found.group(1)) * _UNITS[found.group(2)]
        if seconds < 0 or (positive and seconds == 0):
            raise self.fail(path, f"{'.'.join(path)} must be more than zero")
        return seconds

    def naive(self, value: str, path: Path_, resource: Resource | None) -> str:
        if value == "location":
            if resource is None or "location_id" not in resource.field_by_name:
                where = resource.name if resource is not None else "source"
                raise self.fail(
                    path,
                    f"naive_datetimes: location needs a location_id, which {where} records "
                    "lack; name a zone instead (UTC, America/New_York)",
                )
            return value
        if not is_timezone(value):
            raise self.fail(
                path,
                f"naive_datetimes: {value!r} is not an IANA time zone; write UTC, a zone such "
                "as America/New_York, or location",
            )
        return value


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; expected one of: {', '.join(choices)}"


def load(path: str | Path, environ: AnyMapping[str, str] | None = None) -> MappingFile:
    """Read and check a mapping file; MappingError names the line and the fix."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(file, None, f"cannot read the file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise MappingError(file, None, "the file is not UTF-8 text") from exc
    return parse(text, file=file, environ=os.environ if environ is None else environ)


def parse(text: str, *, file: str, environ: AnyMapping[str, str]) -> MappingFile:
    """Check a mapping file's text (see `load`)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise MappingError(file, line, f"not valid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise MappingError(file, None, f"not valid YAML: {exc}") from exc
    reader = _Reader(file, _Lines(root), environ)
    if not isinstance(document, dict):
        raise reader.fail((), "a mapping file holds source:, business: and resources: sections")
    top = reader.convert(document, _File, ())
    name = top.name or Path(file).stem
    if not _NAME.match(name):
        raise reader.fail(("name",), f"name {name!r} must be 1–64 letters, digits, '.', '_' or '-'")
    source_spec = reader.convert(reader.expand(top.source, ("source",)), _Source, ("source",))
    source = _source(reader, source_spec)
    tenancy = _tenancy(reader, reader.expand(top.business, ("business",)))
    if not top.resources:
        raise reader.fail(("resources",), "resources: maps at least one resource to a query")
    resources = []
    for resource_name, spec in top.resources.items():
        resources.append(
            _resource(
                reader,
                str(resource_name),
                reader.expand(spec, ("resources", str(resource_name))),
                source_spec,
            )
        )
    order = {r.name: i for i, r in enumerate(catalogue.RESOURCES)}
    resources.sort(key=lambda m: order[m.resource.name])
    return MappingFile(name, file, source, tenancy, tuple(resources))


def _source(reader: _Reader, spec: _Source) -> SourceSettings:
    url = spec.url.strip()
    if not url:
        raise reader.fail(("source", "url"), "source.url is empty")
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in ("postgresql", "mysql", "mariadb", "sqlite"):
        raise reader.fail(
            ("source", "url"),
            "source.url must be a SQLAlchemy URL of PostgreSQL (postgresql+psycopg://…), "
            "MySQL or MariaDB (mysql+pymysql://…) or SQLite (sqlite:///…)",
        )
    if not 1 <= spec.batch_size <= DEFAULT_BATCH:
        raise reader.fail(
            ("source", "batch_size"), f"source.batch_size must be 1 to {DEFAULT_BATCH:,}"
        )
    if not 1 <= spec.backfill_workers <= MAX_WORKERS:
        raise reader.fail(
            ("source", "backfill_workers"),
            f"source.backfill_workers must be 1 to {MAX_WORKERS} (1: the runner writes alone)",
        )
    reader.naive(spec.naive_datetimes, ("source", "naive_datetimes"), None)
    return SourceSettings(
        url=url,
        poll_interval_s=reader.duration(spec.poll_interval, ("source", "poll_interval")),
        clock_margin_s=reader.duration(
            spec.clock_margin, ("source", "clock_margin"), positive=False
        ),
        fixed_lag_s=reader.duration(spec.fixed_lag, ("source", "fixed_lag")),
        batch_size=spec.batch_size,
        backfill_workers=spec.backfill_workers,
    )


def _tenancy(reader: _Reader, raw: dict[str, Any]) -> Tenancy:
    path = ("business",)
    spec = reader.convert(raw, _Business, path)
    if spec.id is not None:
        if spec.column or spec.businesses or spec.create_missing:
            raise reader.fail(
                path,
                "business: gives either id (one business for every row) or column with "
                "businesses and/or create_missing, not both",
            )
        if spec.id < 1:
            raise reader.fail((*path, "id"), "business.id is a business's id (1 or more)")
        return Tenancy(business_id=spec.id)
    if spec.column is None:
        raise reader.fail(
            path,
            "business: needs id (every row belongs to that business) or column (the column "
            "naming each row's tenant)",
        )
    if not spec.businesses and spec.create_missing is None:
        raise reader.fail(
            path,
            "business.column needs businesses: {tenant: business id} or "
            "create_missing: {name_query: …} to know whose rows are whose",
        )
    for tenant, business_id in (spec.businesses or {}).items():
        if business_id < 1:
            raise reader.fail((*path, "businesses", tenant), "a business id is 1 or more")
    return Tenancy(
        column=spec.column,
        businesses=dict(spec.businesses or {}),
        name_query=spec.create_missing.name_query if spec.create_missing else None,
    )


def _resource(reader: _Reader, name: str, raw: Any, defaults: _Source) -> ResourceMapping:
    path = ("resources", name)
    if name not in catalogue.BY_NAME:
        hint = _did_you_mean(name, list(catalogue.NAMES))
        raise reader.fail(path, f"{name!r} is not a resource{hint}")
    resource = catalogue.get(name)
    if not isinstance(raw, dict):
        raise reader.fail(path, f"resources.{name} needs query: and modified:")
    spec = reader.convert(raw, _ResourceSpec, path)
    if not spec.query.strip():
        raise reader.fail((*path, "query"), f"resources.{name}.query is empty")
    delete_column = None
    reconcile = defaults.reconcile
    if spec.deletes is not None:
        if (spec.deletes.column is None) == (spec.deletes.reconcile is None):
            raise reader.fail(
                (*path, "deletes"),
                "deletes: takes column: (soft deletes: a row with it set is a tombstone) or "
                "reconcile: (hard deletes, found every so often), one of the two",
            )
        delete_column = spec.deletes.column
        if spec.deletes.reconcile is not None:
            reconcile = spec.deletes.reconcile
    if spec.reconcile is not None:
        reconcile = spec.reconcile
    naive = reader.naive(
        spec.naive_datetimes or defaults.naive_datetimes, (*path, "naive_datetimes"), resource
    )
    return ResourceMapping(
        resource=resource,
        query=spec.query.strip().rstrip(";"),
        key=spec.key,
        modified=spec.modified,
        delete_column=delete_column,
        naive_datetimes=naive,
        strict=spec.strict,
        reconcile_s=reader.duration(reconcile, (*path, "reconcile")),
        line=reader.lines.of(path),
    )
