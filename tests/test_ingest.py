"""Writing, through real HTTP on both databases: PUT, DELETE, batches and Idempotency-Key."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import httpx

from clubfeed.timefmt import parse_aware
from tests.factories import Api, record
from tests.problemkit import (
    UTC_INSTANT,
    assert_problem,
    changes_since,
    consistent_until,
    nothing_written,
)

ANN = {
    "email": "ann@example.com",
    "first_name": "Ann",
    "last_name": "Lee",
    "phone": None,
    "birth_date": "1990-05-17",
    "is_child": False,
    "parent_id": None,
    "home_location_id": None,
    "extra": {"tier": "gold", "tags": ["früh", 1, None]},
}
USER_KEYS = ["id", *ANN, "created_at", "modified_at"]


def _at(value: str) -> datetime:
    assert re.match(UTC_INSTANT, value), value
    return parse_aware(value)


def _keyed(api: Api, method: str, path: str, key: str, body: Any = None) -> httpx.Response:
    headers = {**api.tenant.write_headers, "Idempotency-Key": key}
    return api.client.request(method, path, json=body, headers=headers)


# PUT


def test_put_creates_then_replaces_returning_the_stored_record(api: Api) -> None:
    created = api.put("users", "u-1", ANN)
    assert created.status_code == 201
    assert created.headers["content-type"] == "application/json"
    first = created.json()
    assert list(first) == USER_KEYS
    assert first == {
        "id": "u-1",
        **ANN,
        "created_at": first["created_at"],
        "modified_at": first["created_at"],
    }
    _at(first["created_at"])

    replaced = api.put("users", "u-1", {"first_name": "Annie", "last_name": "Lee"})
    assert replaced.status_code == 200
    second = replaced.json()
    # A PUT replaces the whole record: what it leaves out becomes null (or false, or {}).
    assert second == {
        "id": "u-1",
        "email": None,
        "first_name": "Annie",
        "last_name": "Lee",
        "phone": None,
        "birth_date": None,
        "is_child": False,
        "parent_id": None,
        "home_location_id": None,
        "extra": {},
        "created_at": first["created_at"],
        "modified_at": second["modified_at"],
    }
    assert _at(second["modified_at"]) > _at(first["modified_at"])
    assert api.get("/v1/users/u-1").content == replaced.content


def test_put_stores_event_times_in_the_location_offset_and_decimals_exactly(api: Api) -> None:
    refs = api.seed()
    sale = record("sales", "s-2", refs, sold_at="2026-01-15T12:00:00Z", pre_tax_price="49.90")
    stored = api.put("sales", "s-2", sale)
    assert stored.status_code == 201
    body = stored.json()
    assert body["sold_at"] == "2026-01-15T07:00:00.000000-05:00"  # America/New_York in winter
    assert body["pre_tax_price"] == "49.90"
    expected = {**sale, "sold_at": body["sold_at"]}
    assert body == {**expected, "created_at": body["created_at"], "modified_at": body["created_at"]}


def test_server_owned_fields_in_a_write_are_ignored(api: Api) -> None:
    owned: dict[str, Any] = {
        "created_at": "2000-01-01T00:00:00Z",
        "modified_at": "2000-01-01T00:00:00Z",
        "deleted": True,
    }
    created = api.put("users", "u-1", {**ANN, **owned})
    assert created.status_code == 201
    stored = created.json()
    assert _at(stored["created_at"]).year >= 2026
    assert stored == {
        "id": "u-1",
        **ANN,
        "created_at": stored["created_at"],
        "modified_at": stored["created_at"],
    }
    assert api.get("/v1/users/u-1").json() == stored

    batch = api.batch("users", [record("users", "u-2", **owned)])
    assert batch.json()["created"] == 1
    assert [r["id"] for r in api.read_all("/v1/users")] == ["u-1", "u-2"]

    # A record as read can be written back as it is: nothing changes.
    since = consistent_until(api, "users")
    resent = api.put("users", "u-1", stored)
    assert (resent.status_code, resent.json()) == (200, stored)
    assert changes_since(api, "users", since) == []


def test_a_write_is_readable_by_the_very_next_request(api: Api) -> None:
    for version in range(5):
        written = api.put("users", "u-1", {**ANN, "first_name": f"Ann {version}"}).json()
        assert api.get("/v1/users/u-1").json() == written
        assert api.read_all("/v1/users") == [written]
        assert api.get("/v1/users", params={"ids": "u-1"}).json()["data"] == [written]
        since = {"modified_since": written["modified_at"]}
        assert api.read_all("/v1/users", **since) == [written]


# DELETE


def test_delete_returns_the_tombstone_and_is_idempotent(api: Api) -> None:
    written = api.put("users", "u-1", ANN).json()
    deleted = api.delete("users", "u-1")
    assert deleted.status_code == 200
    assert deleted.headers["content-type"] == "application/json"
    tombstone = deleted.json()
    assert tombstone == {"id": "u-1", "deleted": True, "modified_at": tombstone["modified_at"]}
    assert _at(tombstone["modified_at"]) > _at(written["modified_at"])

    since = consistent_until(api, "users")
    again = api.delete("users", "u-1")
    assert (again.status_code, again.content) == (200, deleted.content)
    batch = api.batch("users", [], ["u-1"])
    assert batch.status_code == 200
    assert batch.json() | {"modified_at": None} == {
        "created": 0,
        "updated": 0,
        "unchanged": 1,
        "deleted": 0,
        "modified_at": None,
    }
    assert changes_since(api, "users", since) == []

    assert_problem(api.get("/v1/users/u-1"), 404, "not-found")
    assert api.read_all("/v1/users") == []
    assert api.read_all("/v1/users", modified_since="1970-01-01T00:00:00Z") == [tombstone]
    assert api.get("/v1/users", params={"ids": "u-1"}).json() == {
        "data": [tombstone],
        "missing": [],
    }


def test_a_deleted_record_can_be_recreated_with_a_new_created_at(api: Api) -> None:
    first = api.put("users", "u-1", ANN).json()
    tombstone = api.delete("users", "u-1").json()
    recreated = api.put("users", "u-1", ANN)
    assert recreated.status_code == 201
    again = recreated.json()
    assert again["created_at"] == again["modified_at"]
    assert _at(again["created_at"]) > _at(tombstone["modified_at"]) > _at(first["created_at"])
    assert again == {**first, "created_at": again["created_at"], "modified_at": again["created_at"]}
    assert api.get("/v1/users/u-1").json() == again


# Batches


def test_a_batch_answers_what_it_did(api: Api) -> None:
    for name in ("same", "changes", "goes"):
        api.put("users", name, record("users", name))
    since = consistent_until(api, "users")

    response = api.batch(
        "users",
        [
            record("users", "same"),
            record("users", "changes", first_name="New"),
            record("users", "new-1"),
            record("users", "new-2"),
        ],
        ["goes"],
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    summary = response.json()
    assert summary == {
        "created": 2,
        "updated": 1,
        "unchanged": 1,
        "deleted": 1,
        "modified_at": summary["modified_at"],
    }
    _at(summary["modified_at"])
    changes = changes_since(api, "users", since)
    assert [r["id"] for r in changes] == ["changes", "new-1", "new-2", "goes"]
    assert {r["modified_at"] for r in changes} == {summary["modified_at"]}
    assert changes[0]["first_name"] == "New"
    assert changes[-1] == {"id": "goes", "deleted": True, "modified_at": summary["modified_at"]}


def test_a_batch_is_all_or_nothing(api: Api) -> None:
    refs = api.seed()
    good = [record("memberships", f"m-{i}", refs) for i in range(100)]
    changed = record("memberships", refs["memberships"], refs, status="frozen")
    with nothing_written(api):
        late_failure = api.batch(
            "memberships", [changed, *good, record("memberships", "bad", refs, user_id="nobody")]
        )
        assert_problem(late_failure, 422, "invalid-request", pointer="/upsert/101/user_id")
        duplicate = api.batch("memberships", [changed, *good, good[7]])
        assert_problem(duplicate, 422, "invalid-request", pointer="/upsert/101/id")
    assert api.batch("memberships", [changed, *good]).json()["created"] == 100


def test_an_identical_resend_is_unchanged_and_adds_nothing_to_the_feed(api: Api) -> None:
    records = [record("users", f"u-{i}") for i in range(50)]
    first = api.batch("users", records).json()
    assert (first["created"], first["unchanged"]) == (50, 0)
    put = api.put("users", "solo", ANN)
    since = consistent_until(api, "users")

    resent = api.batch("users", records).json()
    assert resent == {
        "created": 0,
        "updated": 0,
        "unchanged": 50,
        "deleted": 0,
        "modified_at": resent["modified_at"],
    }
    again = api.put("users", "solo", ANN)
    assert (again.status_code, again.content) == (200, put.content)
    assert changes_since(api, "users", since) == []


def test_a_reference_may_name_an_earlier_record_of_the_batch_only(api: Api) -> None:
    parent = record("users", "parent")
    child = record("users", "child", parent_id="parent")
    with nothing_written(api):
        later = api.batch("users", [child, parent])
        body = assert_problem(later, 422, "invalid-request", pointer="/upsert/0/parent_id")
        assert "'parent'" in body["detail"]
        itself = api.batch("users", [record("users", "self", parent_id="self")])
        assert_problem(itself, 422, "invalid-request", pointer="/upsert/0/parent_id")

    earlier = api.batch("users", [parent, child])
    assert earlier.status_code == 200 and earlier.json()["created"] == 2
    assert api.get("/v1/users/child").json()["parent_id"] == "parent"


def test_a_reference_to_a_deleted_record_is_refused(api: Api) -> None:
    api.put("users", "parent", record("users", "parent"))
    api.delete("users", "parent")
    with nothing_written(api):
        response = api.put("users", "child", record("users", "child", parent_id="parent"))
        assert_problem(response, 422, "invalid-request", pointer="/parent_id")


# Idempotency-Key


def test_a_replayed_put_returns_the_first_response_and_writes_nothing(api: Api) -> None:
    first = _keyed(api, "PUT", "/v1/users/u-1", "put-1", ANN)
    assert first.status_code == 201
    later = api.put("users", "u-1", {**ANN, "first_name": "Later"}).json()
    since = consistent_until(api, "users")

    replay = _keyed(api, "PUT", "/v1/users/u-1", "put-1", ANN)
    assert (replay.status_code, replay.content) == (201, first.content)
    assert replay.headers["content-type"] == "application/json"
    assert changes_since(api, "users", since) == []
    assert api.get("/v1/users/u-1").json() == later


def test_a_replayed_batch_and_delete_return_the_first_response(api: Api) -> None:
    batch = {"upsert": [record("users", "u-1"), record("users", "u-2")], "delete": []}
    first = _keyed(api, "POST", "/v1/users/batch", "batch-1", batch)
    assert first.status_code == 200 and first.json()["created"] == 2
    deleted = _keyed(api, "DELETE", "/v1/users/u-1", "delete-1")
    assert deleted.status_code == 200
    api.put("users", "u-1", record("users", "u-1"))
    since = consistent_until(api, "users")

    replayed_batch = _keyed(api, "POST", "/v1/users/batch", "batch-1", batch)
    assert (replayed_batch.status_code, replayed_batch.content) == (200, first.content)
    replayed_delete = _keyed(api, "DELETE", "/v1/users/u-1", "delete-1")
    assert (replayed_delete.status_code, replayed_delete.content) == (200, deleted.content)
    assert changes_since(api, "users", since) == []
    assert api.get("/v1/users/u-1").status_code == 200


def test_a_key_reused_for_another_request_is_422(api: Api) -> None:
    assert _keyed(api, "PUT", "/v1/users/u-1", "key-1", ANN).status_code == 201
    with nothing_written(api):
        for response in (
            _keyed(api, "PUT", "/v1/users/u-1", "key-1", {**ANN, "first_name": "Other"}),
            _keyed(api, "PUT", "/v1/users/u-2", "key-1", ANN),
            _keyed(api, "DELETE", "/v1/users/u-1", "key-1"),
            _keyed(api, "POST", "/v1/users/batch", "key-1", {"upsert": [record("users", "u-3")]}),
        ):
            body = assert_problem(response, 422, "idempotency-key-reused")
            assert "'key-1'" in body["detail"] and "new key" in body["detail"]


def test_idempotency_keys_are_per_business(api: Api, other_api: Api) -> None:
    mine = _keyed(api, "PUT", "/v1/users/u-1", "shared-key", ANN)
    theirs = _keyed(other_api, "PUT", "/v1/users/u-9", "shared-key", {**ANN, "first_name": "Bo"})
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert theirs.json()["id"] == "u-9" and theirs.json()["first_name"] == "Bo"
    assert other_api.read_all("/v1/users") == [theirs.json()]
    assert api.read_all("/v1/users") == [mine.json()]
    replay = _keyed(other_api, "PUT", "/v1/users/u-9", "shared-key", {**ANN, "first_name": "Bo"})
    assert replay.content == theirs.content


def test_a_failed_request_with_a_key_stores_nothing_and_can_be_retried(api: Api) -> None:
    refs = api.seed()
    membership = record("memberships", "m-2", refs, user_id="later")
    with nothing_written(api):
        failed = _keyed(api, "PUT", "/v1/memberships/m-2", "retry-1", membership)
        assert_problem(failed, 422, "invalid-request", pointer="/user_id")
    api.put("users", "later", record("users", "later"))
    retried = _keyed(api, "PUT", "/v1/memberships/m-2", "retry-1", membership)
    assert retried.status_code == 201
    assert retried.json()["user_id"] == "later"

    with nothing_written(api):
        malformed = _keyed(api, "PUT", "/v1/users/u-5", "retry-2", {"first_name": 5})
        assert_problem(malformed, 422, "invalid-request", pointer="/first_name")
    fixed = _keyed(api, "PUT", "/v1/users/u-5", "retry-2", ANN)
    assert fixed.status_code == 201


def test_extra_in_another_key_order_is_unchanged(api: Api) -> None:
    first = api.put("users", "x", record("users", "x", extra={"a": 1, "b": {"d": 2, "c": 3}}))
    again = api.put("users", "x", record("users", "x", extra={"b": {"c": 3, "d": 2}, "a": 1}))
    assert again.status_code == 200 and again.json() == first.json()
