"""Source rows to clubfeed records, the way a person would expect each value to turn out.

Integer keys and references become their decimal strings, MySQL's TINYINT(1) a
boolean, DECIMAL an exact price, DATE a date, and a datetime without an offset the
zone the mapping names (or its location's). A value that cannot be converted makes the
row a `Problem` naming its column; the row is skipped, never half-written.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from clubfeed.catalogue import Kind
from clubfeed.ingest import validate
from clubfeed.sources.database import Rows, SourceDB
from clubfeed.sources.mapping import ResourceMapping
from clubfeed.timefmt import zone


class BadValue(Exception):
    """One value that cannot become what its field holds; `column` names it in the source."""

    def __init__(self, column: str, detail: str) -> None:
        super().__init__(detail)
        self.column = column
        self.detail = detail


@dataclass
class Draft:
    """One source row on its way to a record.

    `key` is the source's own key value and `modified` its modified column, as read;
    `record_id` is the key as clubfeed's id. `waiting` lists datetime fields without an
    offset that take the zone of the record's location, which only clubfeed knows.
    """

    key: Any
    modified: Any
    tenant: str
    record_id: str | None
    deleted: bool
    fields: dict[str, Any] = field(default_factory=dict)
    raw_refs: dict[str, Any] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    problem: BadValue | None = None


def _text(column: str, value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        raise BadValue(column, f"{column} is a boolean ({value}), not text")
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise BadValue(column, f"{column} is {value}, not text")
        text = str(int(value)) if value == value.to_integral_value() else format(value, "f")
    elif isinstance(value, uuid.UUID):
        text = str(value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise BadValue(column, f"{column} holds bytes that are not UTF-8 text") from None
    else:
        raise BadValue(column, f"{column} is a {type(value).__name__}, not text")
    if "\x00" in text:
        raise BadValue(column, f"{column} holds a NUL character, which no text may")
    return text


def _date(column: str, value: Any) -> date:
    if isinstance(value, datetime):
        if value.time() == time(0) and value.tzinfo is None:
            return value.date()
        raise BadValue(column, f"{column} is a date and time ({value}), not a date")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise BadValue(column, f"{column} {value!r} is not a date (YYYY-MM-DD)") from None
    raise BadValue(column, f"{column} is a {type(value).__name__}, not a date")


def _datetime(column: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            raise BadValue(
                column, f"{column} {value!r} is not a date and time (ISO 8601)"
            ) from None
    raise BadValue(column, f"{column} is a {type(value).__name__}, not a date and time")


_TRUE = frozenset({"1", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "f", "false", "n", "no"})


def _bool(column: str, value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, Decimal)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise BadValue(column, f"{column} is {value!r}, not a boolean (true/false or 1/0)")


def _decimal(column: str, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise BadValue(column, f"{column} is a boolean, not a number")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadValue(column, f"{column} is {value}, not a finite number")
        return Decimal(repr(value))  # the shortest decimal that reads back as this float
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            raise BadValue(column, f"{column} {value!r} is not a decimal number") from None
    raise BadValue(column, f"{column} is a {type(value).__name__}, not a number")


_CONVERTERS: dict[Kind, Callable[[str, Any], Any]] = {
    Kind.TEXT: _text,
    Kind.REF: _text,
    Kind.TIMEZONE: _text,
    Kind.DATE: _date,
    Kind.DATETIME: _datetime,
    Kind.BOOL: _bool,
    Kind.DECIMAL: _decimal,
}


def extra_value(value: Any, *, flag: bool = False) -> Any:
    """A column outside the resource's fields, as JSON holds it."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return bool(value) if flag and value in (0, 1) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.hex()
    if isinstance(value, (list, dict)):
        return value
    return str(value)


@dataclass(frozen=True)
class Layout:
    """Where each part of a row is, worked out once per read from its column names."""

    key: int
    id: int
    modified: int
    deleted: int | None
    tenant: int | None
    fields: tuple[tuple[int, str, Kind], ...]
    extra: tuple[tuple[int, str, bool], ...]
    naive_zone: ZoneInfo | None  # the zone of naive datetimes; None: the record's location's


class ColumnsProblem(Exception):
    """A query whose columns cannot map to the resource at all (every row would fail)."""


def layout(mapping: ResourceMapping, rows: Rows, tenant_column: str | None) -> Layout:
    """Check a query's columns against the resource; ColumnsProblem says what to change."""
    position = {name: i for i, name in enumerate(rows.columns)}
    resource = mapping.resource
    name = resource.name
    if len(position) != len(rows.columns):
        raise ColumnsProblem(f"{name}: the query names a column twice; alias one of them")
    for needed in (mapping.key, mapping.modified, "id", tenant_column, mapping.delete_column):
        if needed is not None and needed not in position:
            raise ColumnsProblem(
                f"{name}: the query has no column {needed!r} (its columns: "
                f"{', '.join(rows.columns)}); add it, or `… AS {needed}`"
            )
    for f in resource.fields:
        if not f.nullable and f.kind is not Kind.BOOL and f.name not in position:
            raise ColumnsProblem(
                f"{name}: the query has no column {f.name!r}, which every {name} record "
                f"needs; add `… AS {f.name}`"
            )
    control = set(mapping.control_columns) | {"id"}
    if tenant_column is not None:
        control.add(tenant_column)
    others = [c for c in rows.columns if c not in resource.field_by_name and c not in control]
    if mapping.strict and others:
        raise ColumnsProblem(
            f"{name} is strict, and the query has columns that are not {name} fields: "
            f"{', '.join(others)}; drop them, or remove strict: true to keep them in extra"
        )
    fields = tuple(
        (position[f.name], f.name, f.kind) for f in resource.fields if f.name in position
    )
    extra = tuple((position[c], c, c in rows.flags) for c in others)
    return Layout(
        key=position[mapping.key],
        id=position["id"],
        modified=position[mapping.modified],
        deleted=position[mapping.delete_column] if mapping.delete_column else None,
        tenant=position[tenant_column] if tenant_column else None,
        fields=fields,
        extra=extra,
        naive_zone=None if mapping.naive_datetimes == "location" else zone(mapping.naive_datetimes),
    )


def draft(mapping: ResourceMapping, plan: Layout, row: tuple[Any, ...]) -> Draft:
    """One row as a Draft; a value that cannot convert sets `problem` and stops there."""
    tenant = tenant_of(plan, row)
    deleted = plan.deleted is not None and row[plan.deleted] is not None
    out = Draft(row[plan.key], row[plan.modified], tenant, None, deleted)
    try:
        raw_id = row[plan.id]
        if raw_id is None:
            raise BadValue("id", "id is empty (NULL)")
        out.record_id = _text("id", raw_id)
        if deleted:
            return out
        fixed_zone = plan.naive_zone
        fields = out.fields
        for index, name, kind in plan.fields:
            value = row[index]
            if value is None:
                if kind is Kind.BOOL:
                    fields[name] = False
                continue
            converted = _CONVERTERS[kind](name, value)
            if kind is Kind.REF:
                out.raw_refs[name] = value
            elif kind is Kind.DATETIME and converted.tzinfo is None:
                if fixed_zone is None:
                    out.waiting.append(name)
                else:
                    converted = converted.replace(tzinfo=fixed_zone)
            fields[name] = converted
        fields["extra"] = {name: extra_value(row[i], flag=f) for i, name, f in plan.extra}
    except BadValue as exc:
        out.problem = exc
    return out


class Drafts:
    """Rows of a mapping's queries to drafts, each query's layout worked out once per shape."""

    def __init__(self, tenant_column: str | None) -> None:
        self.tenant_column = tenant_column
        self._layouts: dict[tuple[str, tuple[str, ...]], Layout] = {}

    def layout(self, mapping: ResourceMapping, rows: Rows) -> Layout:
        """The read's layout; ColumnsProblem when its columns cannot map to the resource."""
        key = (mapping.resource.name, rows.columns)
        plan = self._layouts.get(key)
        if plan is None:
            plan = self._layouts[key] = layout(mapping, rows, self.tenant_column)
        return plan

    def of(self, mapping: ResourceMapping, rows: Rows) -> list[Draft]:
        plan = self.layout(mapping, rows)
        return [draft(mapping, plan, row) for row in rows.rows]

    def fetch(
        self, source: SourceDB, mapping: ResourceMapping, keys: Sequence[Any], batch_size: int
    ) -> list[Draft]:
        """Drafts of `mapping`'s rows with these keys, read from the source now."""
        drafts: list[Draft] = []
        for start in range(0, len(keys), batch_size):
            rows = source.read_keys(mapping, keys[start : start + batch_size])
            if rows.rows:
                drafts += self.of(mapping, rows)
        return drafts


def tenant_of(plan: Layout, row: tuple[Any, ...]) -> str:
    """The row's tenant as text ("" for a source of one business, or a NULL tenant)."""
    if plan.tenant is None or row[plan.tenant] is None:
        return ""
    return str(row[plan.tenant])


def record(mapping: ResourceMapping, item: Draft, zones: Mapping[str, ZoneInfo]) -> Any:
    """The Draft as the record type the write accepts; BadValue names the failing column.

    `zones` holds the time zones of the locations this resource's rows name, for
    datetimes that are local time at the record's location.
    """
    fields = {"id": item.record_id, **item.fields}
    if item.waiting:
        location = fields.get("location_id")
        found = zones.get(location) if location is not None else None
        if found is None:
            raise BadValue(
                item.waiting[0],
                f"{item.waiting[0]} has no offset and the record has no location to take "
                "one from; set naive_datetimes to a zone",
            )
        for name in item.waiting:
            fields[name] = fields[name].replace(tzinfo=found)
    try:
        return msgspec.convert(fields, validate.record_type(mapping.resource))
    except msgspec.ValidationError as exc:
        detail, _, where = str(exc).partition(" - at `$.")
        column = where.split(".", 1)[0].split("[", 1)[0].rstrip("`") or "id"
        raise BadValue(column, f"{column}: {detail}") from None
