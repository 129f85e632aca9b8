"""Record types for every resource, made from the catalogue: one declaration drives these too.

Each resource's records decode into a msgspec Struct named like the API's schema
(`Checkin`, `SalesCategory`): its fields typed (text and references as `str`, event
times as aware `datetime`, dates as `date`, prices as `Decimal`), plus `id`,
`created_at`, `modified_at` and `extra`. A delete arrives as a `Tombstone`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import msgspec

from clubfeed import catalogue
from clubfeed.catalogue import Kind, Resource

_TYPES: dict[Kind, Any] = {
    Kind.TEXT: str,
    Kind.REF: str,
    Kind.TIMEZONE: str,
    Kind.DATE: date,
    Kind.DATETIME: datetime,
    Kind.BOOL: bool,
    Kind.DECIMAL: Decimal,
}


class Record(msgspec.Struct, kw_only=True, frozen=True):
    """What every resource's record holds; each resource's type adds its fields."""

    id: str
    created_at: datetime
    modified_at: datetime
    extra: dict[str, Any] = {}


class Tombstone(msgspec.Struct, frozen=True):
    """A record deleted at `modified_at`: apply it by deleting `id` from your copy."""

    id: str
    modified_at: datetime
    deleted: bool = True


def _record_type(resource: Resource) -> type[Record]:
    fields: list[tuple[str, Any, Any]] = []
    for spec in resource.fields:
        kind = _TYPES[spec.kind]
        if spec.nullable:
            fields.append((spec.name, kind | None, None))
        else:
            fields.append((spec.name, kind, msgspec.NODEFAULT))
    made = msgspec.defstruct(
        resource.one_type_name,
        fields,
        bases=(Record,),
        kw_only=True,
        frozen=True,
        module=__name__,
    )
    made.__doc__ = resource.description
    assert issubclass(made, Record)
    return made


RECORD_TYPES: dict[str, type[Record]] = {r.name: _record_type(r) for r in catalogue.RESOURCES}
"""Each resource's record type, by the resource's name in the API (`"checkins"`)."""
