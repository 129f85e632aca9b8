"""Decoding and validating writes, with msgspec types generated from the catalogue.

msgspec checks types, required fields and unknown fields in C while it parses, and
names the failing place (`$.upsert[17].user_id`); the few rules it cannot express
(id characters, IANA zones, finite decimals, duplicates) are checked here after.
References to other records need the database and are checked in `write`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Literal

import msgspec

from clubfeed import catalogue
from clubfeed.catalogue import Kind, Resource
from clubfeed.errors import BadRequest, ErrorItem, InvalidInput, Place
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


_FIELD = re.compile(r"^Object (?:contains unknown|missing required) field `(.+)`$")


def _decode_error(exc: Exception) -> InvalidInput:
    """Turn msgspec's message into an error that names the record index and field."""
    detail, found, where = str(exc).rpartition(" - at `")
    if not found:
        detail, where = str(exc), "$`"
    path = where.rstrip("`")
    segments = [s for s in re.split(r"[.\[\]]+", path[1:]) if s]
    if (named := _FIELD.match(detail)) is not None:
        segments.append(named.group(1))
    if not segments:
        return InvalidInput(f"The request body is not valid: {detail}. Nothing was written.")
    return InvalidInput.listing([_item_at(segments, detail)])


def _item_at(segments: list[str], detail: str) -> ErrorItem:
    """The problem at these JSON Pointer segments of a body: placed when they fall inside
    a batch's `upsert` or `delete` item, else a bare pointer (a PUT's body, a batch's lists)."""
    if len(segments) >= 2 and segments[0] in ("upsert", "delete") and segments[1].isdigit():
        part: Literal["upsert", "delete"] = "upsert" if segments[0] == "upsert" else "delete"
        place = Place(part, int(segments[1]), field="/".join(segments[2:]) or None)
        return ErrorItem.at(place, detail)
    return ErrorItem(detail, "/" + "/".join(segments))


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
    if b"\\u0000" in data and (path := _nul_path(msgspec.json.decode(data))) is not None:
        raise InvalidInput.listing(
            [_item_at(path, "Text may not contain NUL (\\u0000) characters.")]
        )
    return decoded


def _nul_path(node: Any) -> list[str] | None:
    """The JSON Pointer segments (escaped) of the first string or key holding a NUL character.

    PostgreSQL text cannot hold NUL, so it is refused everywhere, on both databases.
    """
    if isinstance(node, str):
        return [] if "\x00" in node else None
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, value in items:
        here = str(key).replace("~", "~0").replace("/", "~1")
        if "\x00" in str(key):
            return [here]
        if (found := _nul_path(value)) is not None:
            return [here, *found]
    return None


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


_PROOF = object()


@dataclass(frozen=True)
class Batch:
    """A write that passed every rule checkable without the database: what `write` accepts.

    Only `validated` makes one. `single` marks one record's PUT or DELETE, where a delete
    of a record that is not there is an error rather than a no-op.
    """

    resource: Resource
    upserts: tuple[Any, ...]
    deletes: tuple[str, ...]
    single: bool = False
    _proof: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._proof is not _PROOF:
            raise TypeError("A Batch is made by validate.validated(), which checks it.")


def validated(
    resource: Resource,
    records: Sequence[Any],
    deletes: Sequence[str],
    *,
    single: bool = False,
    limit: int | None = MAX_BATCH,
) -> Batch:
    """Check the rules msgspec cannot express; InvalidInput lists every failing place.

    `limit` bounds the items of one write (one transaction); what clients send is bounded
    by the default, and None lifts it for a writer of this process that needs a larger
    transaction (a test of one instant shared by more records than a batch holds).
    """
    if limit is not None:
        _check_batch_size(len(records), len(deletes), limit)
    errors: list[ErrorItem] = []
    seen: dict[str, int] = {}
    zones = [f.name for f in resource.fields if f.kind is Kind.TIMEZONE]
    decimals = [f.name for f in resource.fields if f.kind is Kind.DECIMAL]
    datetimes = [f.name for f in resource.fields if f.kind is Kind.DATETIME]

    def problem_at(
        part: Literal["upsert", "delete"],
        index: int,
        key: str | None,
        name: str | None,
        detail: str,
    ) -> None:
        """Note a problem; its place is built only then, never for a record that passes."""
        errors.append(ErrorItem.at(Place(part, index, key, name), detail))

    for index, record in enumerate(records):
        if record.id is None:
            problem_at("upsert", index, record.id, "id", "Every record needs an id.")
            continue
        if (problem := catalogue.id_problem(record.id)) is not None:
            problem_at("upsert", index, record.id, "id", problem)
        if record.id in seen:
            problem_at(
                "upsert",
                index,
                record.id,
                "id",
                f"Id {record.id!r} appears twice (also at upsert {seen[record.id]}).",
            )
        seen.setdefault(record.id, index)
        for name in zones:
            value = getattr(record, name)
            if value is not None and not is_timezone(value):
                problem_at(
                    "upsert",
                    index,
                    record.id,
                    name,
                    f"{value!r} is not an IANA time zone (e.g. America/New_York).",
                )
        for name in decimals:
            value = getattr(record, name)
            if value is not None and (wrong := _decimal_problem(name, value)) is not None:
                problem_at("upsert", index, record.id, name, wrong)
        for name in datetimes:
            value = getattr(record, name)
            if value is not None and out_of_range(value):
                problem_at("upsert", index, record.id, name, f"{name} must lie {RANGE_TEXT}.")
    deleted: set[str] = set()
    for index, record_id in enumerate(deletes):
        if (problem := catalogue.id_problem(record_id)) is not None:
            problem_at("delete", index, record_id, None, problem)
        if record_id in seen:
            problem_at(
                "delete", index, record_id, None, f"Id {record_id!r} is both upserted and deleted."
            )
        if record_id in deleted:
            problem_at("delete", index, record_id, None, f"Id {record_id!r} is deleted twice.")
        deleted.add(record_id)
    if errors:
        raise InvalidInput.listing(errors)
    return Batch(resource, tuple(records), tuple(deletes), single, _PROOF)


def _check_batch_size(upserts: int, deletes: int, limit: int) -> None:
    """A batch is one transaction of at most `limit` items, upserts and deletes together.

    msgspec bounds each list alone while parsing; the sum is bounded here, pointing at
    the first item past the limit.
    """
    if upserts + deletes <= limit:
        return
    place = Place("upsert", limit) if upserts > limit else Place("delete", limit - upserts)
    detail = (
        f"A batch holds at most {limit:,} items, upserts and deletes together (this one "
        f"has {upserts + deletes:,}: {upserts:,} to upsert, {deletes:,} to delete); split it."
    )
    raise InvalidInput.listing([ErrorItem.at(place, detail)])
