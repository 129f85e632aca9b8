"""Reconciliation: the server's count and checksum equal what a client computes over its copy.

The client's side is written here from the README's definition alone (hashlib), never
from the server's code, so a server that drifts from the documented checksum fails.
"""

from __future__ import annotations

import hashlib

import pytest

from tests.factories import Api, record
from tests.problemkit import assert_problem


def _hash(item: dict[str, object]) -> int:
    text = f"{item['id']}\n{item['modified_at']}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def _bucket(record_id: str, buckets: int) -> int:
    top = int.from_bytes(hashlib.sha256(record_id.encode()).digest()[:2], "big")
    return top >> (16 - (buckets.bit_length() - 1))


def _checksum(items: list[dict[str, object]]) -> str:
    return f"{sum(_hash(i) for i in items) % 2**64:016x}"


@pytest.fixture
def copied(api: Api) -> list[dict[str, object]]:
    """Users written, updated and deleted; then the client's copy from a complete transfer."""
    assert (
        api.batch("users", upsert=[record("users", f"u{i:02d}") for i in range(40)]).status_code
        == 200
    )
    assert api.put("users", "u03", record("users", "u03", first_name="Changed")).status_code == 200
    for gone in ("u05", "u06"):
        assert api.delete("users", gone).status_code == 200
    copy = api.read_all("/v1/users", limit="7")
    assert len(copy) == 38
    return copy


def test_the_summary_equals_the_client_computation_over_its_copy(
    api: Api, copied: list[dict[str, object]]
) -> None:
    summary = api.get("/v1/users/summary")
    assert summary.status_code == 200, summary.text
    page = api.get("/v1/users", params={"limit": 1}).json()
    assert summary.json() == {
        "count": 38,
        "checksum": _checksum(copied),
        "consistent_until": page["consistent_until"],
    }
    assert api.get("/v1/locations/summary").json()["count"] == 0
    assert api.get("/v1/locations/summary").json()["checksum"] == "0" * 16


def test_buckets_narrow_a_difference_down_to_its_ids(
    api: Api, copied: list[dict[str, object]]
) -> None:
    buckets = 16
    served = api.get("/v1/users/summary", params={"buckets": buckets}).json()
    assert len(served["buckets"]) == buckets
    mine: list[list[dict[str, object]]] = [[] for _ in range(buckets)]
    for item in copied:
        mine[_bucket(str(item["id"]), buckets)].append(item)
    assert served["buckets"] == [{"count": len(b), "checksum": _checksum(b)} for b in mine]
    assert served["count"] == 38 and served["checksum"] == _checksum(copied)

    # The server changes one record the copy has not seen: only its bucket differs.
    assert api.put("users", "u10", record("users", "u10", last_name="Moved")).status_code == 200
    after = api.get("/v1/users/summary", params={"buckets": buckets}).json()
    differ = [i for i in range(buckets) if after["buckets"][i] != served["buckets"][i]]
    assert differ == [_bucket("u10", buckets)]
    assert after["count"] == 38 and after["checksum"] != served["checksum"]


@pytest.mark.parametrize("value", ["0", "3", "131072", "x", "-2", "1.0"])
def test_buckets_must_be_a_power_of_two_up_to_65536(api: Api, value: str) -> None:
    response = api.get("/v1/users/summary", params={"buckets": value})
    assert_problem(response, 400, "bad-request", pointer="buckets")


def test_one_and_65536_buckets_hold_every_record(api: Api, copied: list[dict[str, object]]) -> None:
    one = api.get("/v1/users/summary", params={"buckets": 1}).json()
    assert one["buckets"] == [{"count": 38, "checksum": _checksum(copied)}]
    many = api.get("/v1/users/summary", params={"buckets": 65_536}).json()["buckets"]
    assert len(many) == 65_536 and sum(b["count"] for b in many) == 38
    assert_problem(api.get("/v1/users/summary", params={"limit": 1}), 400, "bad-request")
