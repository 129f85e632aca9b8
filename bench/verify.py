"""Proof that the three contestants hand over the same records, so the timings compare like with like."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec

from bench.client import BenchError

TIME_FIELDS = ("checked_in_at", "created_at", "modified_at")


def _records(page_json: bytes | str, key: str | None) -> list[dict[str, Any]]:
    decoded = msgspec.json.decode(page_json)
    records: list[dict[str, Any]] = decoded[key] if key else decoded
    return records


def _mismatch(what: str, left: list[Any], right: list[Any]) -> BenchError:
    if len(left) != len(right):
        return BenchError(f"{what}: {len(left)} records against {len(right)}")
    for index, (a, b) in enumerate(zip(left, right, strict=True)):
        if a != b:
            return BenchError(f"{what}: record {index} differs:\n  {a}\n  {b}")
    return BenchError(f"{what}: pages differ")


def same_as_database(what: str, ours: bytes, database: str) -> None:
    """clubfeed's page and the database's JSON hold exactly the same records, byte for byte in value."""
    left, right = _records(ours, "data"), _records(database, None)
    if left != right:
        raise _mismatch(what, left, right)


def _instants(record: dict[str, Any]) -> dict[str, Any]:
    """Times as (instant, offset): Pydantic writes UTC as `Z` where clubfeed writes `+00:00`."""
    out = dict(record)
    for name in TIME_FIELDS:
        at = datetime.fromisoformat(out[name])
        offset: timedelta | None = at.utcoffset()
        out[name] = (at, offset)
    return out


def same_as_typical(what: str, ours: bytes, typical: bytes) -> None:
    """The typical app's page holds the same records with the same instants and offsets."""
    left = [_instants(r) for r in _records(ours, "data")]
    right = [_instants(r) for r in _records(typical, "data")]
    if left != right:
        raise _mismatch(what, left, right)


def same_ids(what: str, ours: bytes, database: str) -> None:
    """The same records in the same order, whatever their times look like."""
    left = [r["id"] for r in _records(ours, "data")]
    right = [r["id"] for r in _records(database, None)]
    if left != right:
        raise _mismatch(what, left, right)
