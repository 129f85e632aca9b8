"""Reconciliation: the server's count and checksum equal what a client computes over its copy.

The client's side is written here from the README's definition alone (hashlib), never
from the server's code, so a server that drifts from the documented checksum fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from clubfeed.storage.engine import write_transaction
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


def _assert_summaries_match_copies(api: Api, resources: tuple[str, ...]) -> None:
    """Each resource's summary, whole and in 16 buckets, equals the client's over a transfer."""
    for name in resources:
        copy = api.read_all(f"/v1/{name}", limit="50")
        served = api.get(f"/v1/{name}/summary", params={"buckets": 16}).json()
        mine: list[list[dict[str, object]]] = [[] for _ in range(16)]
        for item in copy:
            mine[_bucket(str(item["id"]), 16)].append(item)
        assert (name, served["count"], served["checksum"]) == (name, len(copy), _checksum(copy))
        assert served["buckets"] == [{"count": len(b), "checksum": _checksum(b)} for b in mine]


def test_every_kind_of_write_keeps_the_summary_equal_to_the_copy(api: Api) -> None:
    """Re-creates, resends, repeated deletes and a zone move that restamps check-ins."""
    refs = api.seed()
    users = [record("users", f"u{i}") for i in range(12)]
    assert api.batch("users", upsert=users).status_code == 200
    checkins = [record("checkins", f"c{i}", refs) for i in range(20)]
    assert api.batch("checkins", upsert=checkins).status_code == 200
    assert api.batch("users", upsert=users[:4], delete=["u5", "u6"]).status_code == 200  # resend
    assert api.batch("users", delete=["u5", "u6", "never"]).status_code == 200  # again: no-ops
    assert api.put("users", "u5", record("users", "u5", last_name="Back")).status_code == 201
    assert api.batch("checkins", upsert=[checkins[1]], delete=["c2"]).status_code == 200
    moved = api.put(
        "locations",
        refs["locations"],
        record("locations", refs["locations"], timezone="Asia/Tokyo"),
    )
    assert moved.status_code == 200
    restamped = {c["modified_at"] for c in api.read_all("/v1/checkins")}
    assert restamped == {moved.json()["modified_at"]}
    rejected = api.batch("users", upsert=[record("users", "u1", parent_id="nobody")])
    assert rejected.status_code == 422
    _assert_summaries_match_copies(api, ("users", "checkins", "locations"))
    assert api.get("/v1/checkins/summary").json()["count"] == 20


def test_resummarize_recounts_buckets_an_older_version_left_behind(
    db: Engine, db_url: str, api: Api
) -> None:
    """`clubfeed db resummarize`: what a write that skipped the buckets left wrong is right again."""
    assert (
        api.batch("users", upsert=[record("users", f"u{i}") for i in range(9)]).status_code == 200
    )
    assert api.delete("users", "u3").status_code == 200
    business = api.tenant.business.id
    with write_transaction(db) as conn:  # what a write by the previous version leaves
        conn.execute(
            text("UPDATE summary_buckets SET records = records + 1 WHERE business_id = :b"),
            {"b": business},
        )
        conn.execute(
            text("DELETE FROM summary_buckets WHERE business_id = :b AND bucket % 2 = 0"),
            {"b": business},
        )
    assert api.get("/v1/users/summary").json()["count"] != 8

    command = str(Path(sys.executable).parent / "clubfeed")
    done = subprocess.run(
        [command, "db", "resummarize", "--business", str(business), "--json"],
        env={**os.environ, "CLUBFEED_DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"businesses": [{"id": business, "records": 8}]}
    _assert_summaries_match_copies(api, ("users",))


def test_a_batch_large_enough_to_be_staged_writes_exactly_what_it_holds(api: Api) -> None:
    """Over `bulk.COPY_FROM` records, PostgreSQL stages the rows with COPY: new, changed and
    unchanged records in one batch still come out exact, counted and summarized."""
    from clubfeed.storage.bulk import COPY_FROM

    size = 2 * COPY_FROM  # so that the second batch writes more than COPY_FROM, too
    first = [record("users", f"big{i:05d}") for i in range(size)]
    assert api.batch("users", upsert=first).status_code == 200
    second = [
        record("users", f"big{i:05d}", last_name="Changed") if i % 2 else first[i]
        for i in range(size)
    ] + [record("users", f"new{i:05d}") for i in range(300)]
    done = api.batch("users", upsert=second)
    assert done.status_code == 200, done.text
    counts = {k: done.json()[k] for k in ("created", "updated", "unchanged", "deleted")}
    assert counts == {
        "created": 300,
        "updated": size // 2,
        "unchanged": size - size // 2,
        "deleted": 0,
    }
    copy = {item["id"]: item for item in api.read_all("/v1/users", limit="10000")}
    assert len(copy) == size + 300
    assert copy["big00001"]["last_name"] == "Changed"
    assert copy["big00002"]["last_name"] == first[2]["last_name"]
    _assert_summaries_match_copies(api, ("users",))
