"""Turning a validated record into its stored columns and the JSON the feed serves.

The JSON is rendered once, here, at write time, and stored beside the row: a
feed page is then the stored bodies joined with commas, with no per-record work
on the read path. Event times at a location are rendered in that location's
offset at that instant; server times in UTC; both with microseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from clubfeed.catalogue import Kind, Resource
from clubfeed.timefmt import format_us, to_us

_encoder = msgspec.json.Encoder()
# `extra` is stored with sorted keys, so the same object sent in another key order
# is recognised as unchanged.
_extra_encoder = msgspec.json.Encoder(order="sorted")


@cache
def _plan(resource: Resource) -> tuple[tuple[str, Kind], ...]:
    return tuple((f.name, f.kind) for f in resource.fields)


def columns_from_record(resource: Resource, record: Any) -> dict[str, Any]:
    """The typed column values of a decoded record (times as µs, decimals as exact text)."""
    row: dict[str, Any] = {"id": record.id}
    for name, kind in _plan(resource):
        value = getattr(record, name)
        if value is not None:
            if kind is Kind.DATETIME:
                value = to_us(value)
            elif kind is Kind.DECIMAL:
                value = format(value, "f")
        row[name] = value
    row["extra"] = _extra_encoder.encode(record.extra).decode()
    return row


def render_fields(resource: Resource, row: Mapping[Any, Any], zone: ZoneInfo | None) -> str:
    """The record's JSON up to its server times: `{"id":…,` its fields and `"extra":{…}`, open.

    This is all of a body that does not depend on the write's clock, so a writer can
    render it before its transaction; `with_server_times` closes it.
    """
    out: dict[str, Any] = {"id": row["id"]}
    for name, kind in _plan(resource):
        value = row[name]
        if value is not None:
            if kind is Kind.DATETIME:
                value = format_us(value, zone)
            elif kind is Kind.DATE:
                value = value.isoformat()
            elif kind is Kind.BOOL:
                value = bool(value)
        out[name] = value
    out["extra"] = msgspec.Raw(row["extra"].encode())
    return _encoder.encode(out)[:-1].decode()


def with_created_at(fields: str, created_at: str) -> str:
    """A body's content (`content_of`): its rendered fields and created_at."""
    return f'{fields},"created_at":"{created_at}"'


def with_server_times(fields: str, created_at: str, modified_at: str) -> str:
    """The body of `render_fields`' output, closed with the server times (formatted, no
    escaping needed); byte for byte what encoding the whole record at once gives."""
    return f'{with_created_at(fields, created_at)},"modified_at":"{modified_at}"}}'


def render_body(
    resource: Resource,
    row: Mapping[Any, Any],
    zone: ZoneInfo | None,
    created_at: str,
    modified_at: str,
) -> str:
    """The record's JSON as the feed serves it: id, fields, extra, created_at, modified_at.

    The server times come formatted, since a whole batch usually shares them.
    """
    return with_server_times(render_fields(resource, row, zone), created_at, modified_at)


def tombstone_body(record_id: str, modified_at: str) -> str:
    return _encoder.encode({"id": record_id, "deleted": True, "modified_at": modified_at}).decode()


def content_of(body: str) -> str:
    """A body without its modified_at, to tell a real change from a resend of the same record."""
    return body.rpartition(',"modified_at":')[0]
