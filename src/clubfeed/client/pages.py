"""What the API answers, decoded: pages of records and tombstones, bookmarks, and summaries.

Pure functions over bytes, shared by the sync and async clients. A page's records are
decoded straight into their Structs: each item is first probed for `"deleted"` (a
tombstone) without building a dict, then decoded as its type.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec

from clubfeed import checksums
from clubfeed.client.records import RECORD_TYPES, Record, Tombstone


class Bookmark(msgspec.Struct, frozen=True):
    """Where a resource's next pull starts: the `consistent_until` of the last one.

    Save it (`msgspec.json.encode(bookmark)`, or just `modified_since`) once you have
    applied everything the pull yielded before it, and pass it as `since` next time.
    """

    resource: str
    modified_since: str


class _Page(msgspec.Struct):
    data: list[msgspec.Raw]
    next_cursor: str | None
    consistent_until: str


class _Probe(msgspec.Struct):
    deleted: bool = False


_PAGE = msgspec.json.Decoder(_Page)
_PROBE = msgspec.json.Decoder(_Probe)
_TOMBSTONE = msgspec.json.Decoder(Tombstone)
_DECODERS = {name: msgspec.json.Decoder(kind) for name, kind in RECORD_TYPES.items()}


def decode_page(resource: str, body: bytes) -> tuple[list[Record | Tombstone], str | None, str]:
    """A list page's items, its next cursor (None on the last page) and `consistent_until`."""
    page = _PAGE.decode(body)
    record = _DECODERS[resource]
    items: list[Record | Tombstone] = [
        _TOMBSTONE.decode(raw) if _PROBE.decode(raw).deleted else record.decode(raw)
        for raw in page.data
    ]
    return items, page.next_cursor, page.consistent_until


def decode_record(resource: str, body: bytes) -> Record:
    """One record (`GET /v1/{resource}/{id}`)."""
    found: Record = _DECODERS[resource].decode(body)
    return found


def stamp(value: datetime) -> str:
    """A `modified_at` as the server writes it (UTC, microseconds), for checksums over a copy
    that kept datetimes rather than the text served."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class Part(msgspec.Struct, frozen=True):
    """A count of live records and the checksum of their versions."""

    count: int
    checksum: str


class Summary(msgspec.Struct, frozen=True):
    """`GET /v1/{resource}/summary`: the live records at `consistent_until`, whole and by
    bucket when asked for."""

    count: int
    checksum: str
    consistent_until: str
    buckets: list[Part] | None = None


_SUMMARY = msgspec.json.Decoder(Summary)


def decode_summary(body: bytes) -> Summary:
    return _SUMMARY.decode(body)


class Verification(msgspec.Struct, frozen=True):
    """A copy compared with the server's summary: `matches`, or the buckets that differ
    (look up or re-fetch the ids that fall in them)."""

    resource: str
    matches: bool
    server: Part
    local: Part
    consistent_until: str
    differing_buckets: list[int] = []


def compare(
    resource: str,
    summary: Summary,
    copy: Iterable[tuple[str, str | datetime]],
    buckets: int | None,
) -> Verification:
    """The copy's (id, modified_at) pairs summed as the server sums its records."""
    width = buckets or 1
    counts = [0] * width
    sums = [0] * width
    for record_id, modified_at in copy:
        served = modified_at if isinstance(modified_at, str) else stamp(modified_at)
        index = checksums.bucket_of(record_id, width) if buckets else 0
        counts[index] += 1
        sums[index] += checksums.record_hash(record_id, served)
    local = Part(sum(counts), checksums.checksum_text(sum(sums)))
    server = Part(summary.count, summary.checksum)
    differing: list[int] = []
    if buckets and summary.buckets is not None:
        differing = [
            i
            for i, part in enumerate(summary.buckets)
            if part != Part(counts[i], checksums.checksum_text(sums[i]))
        ]
    return Verification(
        resource, local == server, server, local, summary.consistent_until, differing
    )


def problem_of(body: bytes) -> dict[str, Any]:
    """An error's problem+json object ({} when the body is not one)."""
    try:
        found = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return {}
    return found if isinstance(found, dict) else {}
