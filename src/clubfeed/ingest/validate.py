"""Decoding and validating writes, with msgspec types generated from the catalogue.

msgspec checks types, required fields and unknown fields in C while it parses, and
names the failing place (`$.upsert[17].user_id`); the few rules it cannot express
(id characters, IANA zones, finite decimals, duplicates) are checked here after.
References to other records need the database and are checked in `write`.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Annotated, Any

import msgspec

from clubfeed import catalogue
from clubfeed.catalogue import Kind, Resource
from clubfeed.errors import BadRequest, ErrorItem, InvalidInput
from clubfeed.timefmt import RANGE_TEXT, is_timezone, out_of_range

MAX_BATCH = 10_000
MAX_TEXT = 1_000
MAX_DECIMAL_DIGITS = 100

RecordId = Annotated[str, msgspec.Meta(min_length=1, max_length=catalogue.MAX_ID_LENGTH)]
_AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
_Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]

_PYTHON_TYPES: dict[Kind, Any] = {
    Kind.TEXT: _Text,
    Kind.REF: RecordId,
    Kind.TIMEZONE: Annotated[str, msgspec.Meta(max_length=64)],
    Kind.DATE: date,
    Kind.DATETIME: _AwareDatetime,
    Kind.BOOL: bool,
    Kind.DECIMAL: Decimal,
}


@cache
def record_type(resource: Resource) -> type[msgspec.Struct]:
    """The msgspec Struct a written record of `resource` decodes into."""
    fields: list[tuple[str, Any, Any] | tuple[str, Any]] = [("id", RecordId | None, None)]
    for f in resource.fields:
        python_type = _PYTHON_TYPES[f.kind]
        if f.kind is Kind.BOOL:
            fields.append((f.name, python_type, False))
        elif f.nullable:
            fields.append((f.name, python_type | None, None))
        else:
            fields.append((f.name, python_type))
    fields.append(("extra", dict[str, Any], msgspec.field(default_factory=dict)))
    fields += [(name, Any, None) for name in catalogue.SERVER_FIELDS]
    return msgspec.defstruct(resource.type_name, fields, kw_only=True, forbid_unknown_fields=True)


@cache
def batch_type(resource: Resource) -> type[msgspec.Struct]:
    """The Struct of a batch: `{"upsert": [...], "delete": [...]}`, up to 10,000 items in all."""
    records: Any = Annotated[list[record_type(resource)], msgspec.Meta(max_length=MAX_BATCH)]  # type: ignore[misc]
    ids = Annotated[list[RecordId], msgspec.Meta(max_length=MAX_BATCH)]
    return msgspec.defstruct(
        resource.type_name + "Batch",
        [
            ("upsert", records, msgspec.field(default_factory=list)),
            ("delete", ids, msgspec.field(default_factory=list)),
        ],
        forbid_unknown_fields=True,
    )


_PATH = re.compile(r"^\$(?:\.(upsert|delete)\[(\d+)\])?(.*)$")
_FIELD = re.compile(r"^Object (?:contains unknown|missing required) field `(.+)`$")


def _decode_error(exc: Exception) -> InvalidInput:
    """Turn msgspec's message into an error that names the record index and field."""
    detail, found, where = str(exc).rpartition(" - at `")
    if not found:
        detail, where = str(exc), "$`"
    path = where.rstrip("`")
    match = _PATH.match(path)
    pointer = (
        "/" + path[2:].replace(".", "/").replace("[", "/").replace("]", "") if path != "$" else ""
    )
    if (field := _FIELD.match(detail)) is not None:
        pointer += "/" + field.group(1)
    if not pointer:
        return InvalidInput(f"The request body is not valid: {detail}. Nothing was written.")
    index = int(match.group(2)) if match and match.group(2) else None
    item = ErrorItem(detail=detail, pointer=pointer, index=index)
    return InvalidInput(_summary([item]), [item])


def decode(data: bytes, struct_type: type[msgspec.Struct]) -> Any:
    """Decode a request body into `struct_type`, or raise InvalidInput saying where it is wrong."""
    if not data.strip():
        raise BadRequest("The request body is empty; send a JSON object.")
    try:
        decoded = msgspec.json.decode(data, type=struct_type)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"The request body is not valid UTF-8 (byte {exc.start}).") from exc
    except msgspec.ValidationError as exc:
        raise _decode_error(exc) from exc
    except msgspec.DecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from exc
    except RecursionError as exc:
        raise BadRequest("The request body nests arrays or objects too deeply.") from exc
    # JSON can carry NUL only escaped, so one scan of the bytes clears almost every body.
    if b"\\u0000" in data and (pointer := _nul_pointer(msgspec.json.decode(data), "")):
        match = _POINTER_INDEX.match(pointer)
        detail = "Text may not contain NUL (\\u0000) characters."
        item = ErrorItem(detail, pointer, int(match.group(1)) if match else None)
        raise InvalidInput(_summary([item]), [item])
    return decoded


_POINTER_INDEX = re.compile(r"^/(?:upsert|delete)/(\d+)")


def _nul_pointer(node: Any, pointer: str) -> str | None:
    """The JSON Pointer of the first string (or key) under `node` holding a NUL character.

    PostgreSQL text cannot hold NUL, so it is refused everywhere, on both databases.
    """
    if isinstance(node, str):
        return pointer if "\x00" in node else None
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, value in items:
        here = f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"
        if "\x00" in str(key):
            return here
        if (found := _nul_pointer(value, here)) is not None:
            return found
    return None


def check_id(record_id: str, pointer: str, index: int | None = None) -> ErrorItem | None:
    """Ids match `catalogue.ID_PATTERN`; the error says which part of it failed."""
    if catalogue.ID_RE.fullmatch(record_id):
        return None
    if not record_id or len(record_id) > catalogue.MAX_ID_LENGTH:
        return ErrorItem("An id must be 1 to 64 characters long.", pointer, index)
    if record_id in catalogue.RESERVED_IDS:
        return ErrorItem(
            f"{record_id!r} cannot be an id: /v1/<resource>/{record_id} is an endpoint.",
            pointer,
            index,
        )
    return ErrorItem(
        "An id may not hold control characters (U+0000–U+001F, U+007F–U+009F).", pointer, index
    )


def _decimal_digits(value: Decimal) -> int:
    """How many digits `value` takes written out in full (without writing it out)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int), "only finite decimals are measured"
    return max(value.adjusted() + 1, 1) + max(-exponent, 0)


def _decimal_problem(name: str, value: Decimal) -> str | None:
    if not value.is_finite():
        return f"{name} must be a finite decimal number."
    if _decimal_digits(value) > MAX_DECIMAL_DIGITS:
        return f"{name} may have at most {MAX_DECIMAL_DIGITS} digits written out."
    return None


def check_records(
    resource: Resource, records: list[Any], deletes: list[str], *, in_batch: bool = True
) -> None:
    """The rules msgspec cannot express; raise InvalidInput listing every failing place."""
    _check_batch_size(len(records), len(deletes))
    errors: list[ErrorItem] = []
    seen: dict[str, int] = {}
    prefix = "/upsert/" if in_batch else "/"
    zones = [f.name for f in resource.fields if f.kind is Kind.TIMEZONE]
    decimals = [f.name for f in resource.fields if f.kind is Kind.DECIMAL]
    datetimes = [f.name for f in resource.fields if f.kind is Kind.DATETIME]
    for index, record in enumerate(records):
        at = index if in_batch else None
        base = f"{prefix}{index}/" if in_batch else "/"
        if record.id is None:
            errors.append(ErrorItem("Every record needs an id.", f"{base}id", at))
            continue
        if (problem := check_id(record.id, f"{base}id", at)) is not None:
            errors.append(problem)
        if record.id in seen:
            errors.append(
                ErrorItem(
                    f"Id {record.id!r} appears twice (also at upsert {seen[record.id]}).",
                    f"{base}id",
                    at,
                )
            )
        seen.setdefault(record.id, index)
        for name in zones:
            value = getattr(record, name)
            if value is not None and not is_timezone(value):
                errors.append(
                    ErrorItem(
                        f"{value!r} is not an IANA time zone (e.g. America/New_York).",
                        base + name,
                        at,
                    )
                )
        for name in decimals:
            value = getattr(record, name)
            if value is not None and (wrong := _decimal_problem(name, value)) is not None:
                errors.append(ErrorItem(wrong, base + name, at))
        for name in datetimes:
            value = getattr(record, name)
            if value is not None and out_of_range(value):
                errors.append(ErrorItem(f"{name} must lie {RANGE_TEXT}.", base + name, at))
    deleted: set[str] = set()
    for index, record_id in enumerate(deletes):
        pointer = f"/delete/{index}"
        if (problem := check_id(record_id, pointer, index)) is not None:
            errors.append(problem)
        if record_id in seen:
            errors.append(
                ErrorItem(f"Id {record_id!r} is both upserted and deleted.", pointer, index)
            )
        if record_id in deleted:
            errors.append(ErrorItem(f"Id {record_id!r} is deleted twice.", pointer, index))
        deleted.add(record_id)
    if errors:
        raise InvalidInput(_summary(errors), errors)


def _check_batch_size(upserts: int, deletes: int) -> None:
    """A batch is one transaction of at most MAX_BATCH items, upserts and deletes together.

    msgspec bounds each list alone while parsing; the sum is bounded here, pointing at
    the first delete past the limit.
    """
    if upserts + deletes <= MAX_BATCH:
        return
    index = MAX_BATCH - upserts
    detail = (
        f"A batch holds at most {MAX_BATCH:,} items, upserts and deletes together (this one "
        f"has {upserts + deletes:,}: {upserts:,} to upsert, {deletes:,} to delete); split it."
    )
    item = ErrorItem(detail, f"/delete/{index}", index)
    raise InvalidInput(_summary([item]), [item])


def _summary(errors: list[ErrorItem]) -> str:
    first = errors[0]
    where = f" at {first.pointer}" if first.pointer else ""
    more = f" ({len(errors) - 1} more problems listed in errors)" if len(errors) > 1 else ""
    return f"{first.detail.rstrip('.')}{where}{more}. Nothing was written."
