"""Every resource, through real HTTP on both databases: write, read back, list, look up, delete."""

from __future__ import annotations

import pytest

from clubfeed import catalogue
from tests.factories import WRITE_ORDER, Api, record
from tests.problemkit import assert_problem

RESOURCE_NAMES = [r.name for r in catalogue.RESOURCES]


def test_write_order_covers_the_catalogue() -> None:
    assert sorted(WRITE_ORDER) == sorted(RESOURCE_NAMES)


@pytest.mark.parametrize("name", RESOURCE_NAMES)
def test_put_then_get_returns_the_record_as_written(api: Api, name: str) -> None:
    refs = api.seed()
    body = record(name, "x/ 1", refs)

    created = api.put(name, "x%2F%201", body)
    assert created.status_code == 201, created.text
    stored = created.json()
    for key, value in body.items():
        if (
            catalogue.get(name).field_by_name.get(key) is None
            or catalogue.get(name).field_by_name[key].kind is not catalogue.Kind.DATETIME
        ):
            assert stored[key] == value, key
    assert stored["created_at"].endswith("+00:00") and stored["modified_at"] == stored["created_at"]

    fetched = api.get(f"/v1/{name}/x%2F%201")
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "application/json"
    assert fetched.json() == stored


@pytest.mark.parametrize("name", RESOURCE_NAMES)
def test_another_business_never_sees_the_record(api: Api, other_api: Api, name: str) -> None:
    refs = api.seed()
    other_api.seed()
    assert api.put(name, "mine", record(name, "mine", refs)).status_code == 201

    assert other_api.get(f"/v1/{name}/mine").status_code == 404
    assert "mine" not in [r["id"] for r in other_api.read_all(f"/v1/{name}")]
    looked_up = other_api.get(f"/v1/{name}", params={"ids": "mine"}).json()
    assert looked_up == {"data": [], "missing": ["mine"]}
    assert "mine" in [r["id"] for r in api.read_all(f"/v1/{name}")]


def test_delete_leaves_a_tombstone_in_range_queries_and_lookups(api: Api) -> None:
    refs = api.seed()
    api.put("checkins", "c-2", record("checkins", "c-2", refs))
    deleted = api.delete("checkins", "c-2")
    assert deleted.status_code == 200
    tombstone = deleted.json()
    assert set(tombstone) == {"id", "deleted", "modified_at"} and tombstone["deleted"] is True

    assert [r["id"] for r in api.read_all("/v1/checkins")] == ["che-1"]
    ranged = api.read_all("/v1/checkins", modified_since="2000-01-01T00:00:00Z")
    assert ranged[-1] == tombstone
    assert api.get("/v1/checkins", params={"ids": "c-2,che-1,nope"}).json()["data"][0] == tombstone
    assert api.get("/v1/checkins/c-2").status_code == 404
    assert api.delete("checkins", "never").status_code == 404


def test_event_times_carry_the_locations_offset(api: Api) -> None:
    api.put("locations", "adelaide", record("locations", "adelaide", timezone="Australia/Adelaide"))
    api.put("users", "u", record("users", "u"))
    checkin = record(
        "checkins",
        "c",
        {"locations": "adelaide", "users": "u"},
        checked_in_at="2026-01-15T00:00:00.000001Z",
    )
    stored = api.put("checkins", "c", checkin).json()
    # Adelaide is on daylight time (+10:30) in January.
    assert stored["checked_in_at"] == "2026-01-15T10:30:00.000001+10:30"


def test_a_lookup_by_ids_takes_a_limit_that_bounds_how_many_may_be_asked(api: Api) -> None:
    """Generated clients send limit with every list call: with ids it caps the ids, no more."""
    for record_id in ("a", "b", "c"):
        assert api.put("users", record_id, record("users", record_id)).status_code == 201
    found = api.get("/v1/users", params={"ids": "c,a,zz", "limit": "3"})
    assert found.status_code == 200, found.text
    assert [r["id"] for r in found.json()["data"]] == ["c", "a"]
    assert found.json()["missing"] == ["zz"]
    repeated = api.get("/v1/users/lookup", params=[("ids", "c"), ("ids", "a,zz")])
    assert repeated.status_code == 200, repeated.text
    assert [r["id"] for r in repeated.json()["data"]] == ["c", "a"]
    assert repeated.json()["missing"] == ["zz"]
    over = api.get("/v1/users", params={"ids": "a,b,c", "limit": "2"})
    detail = assert_problem(over, 400, "bad-request", pointer="ids")["detail"]
    assert detail.startswith("ids lists 3 ids, more than limit (2)")


def test_one_record_carries_a_strong_etag_and_answers_304_while_unchanged(api: Api) -> None:
    """If-None-Match with the ETag served answers 304 and no body until the record changes."""
    assert api.put("users", "u1", record("users", "u1")).status_code == 201
    first = api.get("/v1/users/u1")
    tag = first.headers["etag"]
    assert first.status_code == 200 and tag.startswith('"') and not tag.startswith("W/")

    for sent in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        unchanged = api.get("/v1/users/u1", headers={"If-None-Match": sent})
        assert unchanged.status_code == 304, sent
        assert unchanged.content == b"" and unchanged.headers["etag"] == tag
        assert unchanged.headers["cache-control"] == "no-store"

    assert api.put("users", "u1", record("users", "u1")).status_code == 200
    assert api.get("/v1/users/u1", headers={"If-None-Match": tag}).status_code == 304

    assert api.put("users", "u1", record("users", "u1", first_name="New")).status_code == 200
    changed = api.get("/v1/users/u1", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.json()["first_name"] == "New"
    assert changed.headers["etag"] != tag
    assert api.get("/v1/users/u1", headers={"If-None-Match": '"stale"'}).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v1/users?limit=1",
        "/v1/users/u1",
        "/v1/users/lookup?ids=u1,zz",
        "/v1/users/nope",
        "/healthz",
    ],
)
def test_head_answers_as_get_does_without_the_body(api: Api, path: str) -> None:
    """Same status and headers (Content-Length, ETag, Link) as the GET, and no body."""
    for record_id in ("u1", "u2"):
        assert api.put("users", record_id, record("users", record_id)).status_code == 201
    got = api.get(path)
    head = api.client.head(path, headers=api.tenant.read_headers)
    assert head.status_code == got.status_code
    assert head.content == b"" and got.content
    # The console is left out: some of its GETs spend a one-time secret.
    assert api.client.head("/console/login").status_code == 405
    # A HEAD spends from the reader's bucket too, so its RateLimit says one fewer remain.
    dropped = {"date", "x-request-id", "ratelimit"}
    assert ("ratelimit" in head.headers) == ("ratelimit" in got.headers)
    assert {k: v for k, v in head.headers.items() if k not in dropped} == {
        k: v for k, v in got.headers.items() if k not in dropped
    }
