"""Bad input, through real HTTP on both databases: a clear problem+json, never a 500, nothing written."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url

from clubfeed.settings import Settings
from clubfeed.storage.engine import make_engine, read_connection, write_transaction
from clubfeed.storage.migrate import upgrade
from clubfeed.storage.schema import api_activity
from clubfeed.web.state import AppState
from tests.conftest import Server
from tests.factories import Api, Tenant, new_tenant, record
from tests.problemkit import (
    EPOCH,
    LEAK_MARKERS,
    assert_problem,
    nothing_written,
    raw_http,
)

SMALL_BODY = 4_096


@pytest.fixture
def refs(api: Api) -> dict[str, str]:
    """One live record of every resource for this test's business."""
    return api.seed()


@pytest.fixture(scope="module")
def small_server(db: Engine, db_url: str) -> Iterator[Server]:
    """The API with a 4 KiB body limit, on the same database as `server`."""
    with Server(Settings(database_url=db_url, max_body_bytes=SMALL_BODY)) as running:
        yield running


def _put_raw(api: Api, path: str, content: bytes) -> httpx.Response:
    return api.client.put(path, content=content, headers=api.tenant.write_headers)


def _post_raw(api: Api, path: str, content: bytes) -> httpx.Response:
    return api.client.post(path, content=content, headers=api.tenant.write_headers)


# Unknown resources and fields


def test_an_unknown_resource_is_404_naming_the_resources(api: Api, refs: dict[str, str]) -> None:
    with nothing_written(api):
        for response in (
            api.get("/v1/members"),
            api.get("/v1/members/1"),
            api.put("members", "1", record("users", "1")),
            api.batch("members", [record("users", "1")]),
            api.delete("members", "1"),
        ):
            body = assert_problem(response, 404, "not-found")
            assert "'members'" in body["detail"]
            assert "users, memberships" in body["detail"]


def test_an_unknown_field_is_422_naming_it(api: Api, refs: dict[str, str]) -> None:
    with nothing_written(api):
        single = api.put("users", "u-2", record("users", "u-2", nickname="Bo"))
        body = assert_problem(single, 422, "invalid-request", pointer="/nickname")
        assert "unknown field `nickname`" in body["detail"]

        batch = api.batch("users", [record("users", "u-2"), record("users", "u-3", nickname="Bo")])
        body = assert_problem(batch, 422, "invalid-request", pointer="/upsert/1/nickname")
        assert body["errors"][0]["index"] == 1


# Wrong values


@pytest.mark.parametrize(
    ("resource", "field", "value"),
    [
        ("users", "is_child", "yes"),
        ("users", "first_name", 5),
        ("users", "first_name", None),
        ("users", "first_name", "x" * 1_001),
        ("users", "birth_date", "31/01/2025"),
        ("users", "birth_date", "2025-02-30"),
        ("users", "extra", [1, 2]),
        ("users", "home_location_id", 7),
        ("sales", "pre_tax_price", True),
        ("checkins", "checked_in_at", 1_767_225_600),
        ("checkins", "checked_in_at", "yesterday"),
    ],
)
def test_a_wrong_type_is_422_at_its_field(
    api: Api, refs: dict[str, str], resource: str, field: str, value: Any
) -> None:
    with nothing_written(api):
        response = api.put(resource, "new-1", record(resource, "new-1", refs, **{field: value}))
        body = assert_problem(response, 422, "invalid-request", pointer=f"/{field}")
        assert body["detail"].endswith("Nothing was written.")


def test_a_missing_required_field_is_422_at_its_field(api: Api, refs: dict[str, str]) -> None:
    body = record("users", "u-2")
    del body["last_name"]
    with nothing_written(api):
        problem = assert_problem(api.put("users", "u-2", body), 422, "invalid-request")
        assert problem["errors"] == [
            {"detail": "Object missing required field `last_name`", "pointer": "/last_name"}
        ]


def test_a_reference_to_a_missing_record_is_422(api: Api, refs: dict[str, str]) -> None:
    with nothing_written(api):
        single = api.put("memberships", "m-2", record("memberships", "m-2", refs, user_id="ghost"))
        body = assert_problem(single, 422, "invalid-request", pointer="/user_id")
        assert "'ghost'" in body["detail"] and "write that record first" in body["detail"]

        batch = api.batch(
            "memberships",
            [record("memberships", "m-2", refs), record("memberships", "m-3", refs, user_id="gh")],
        )
        body = assert_problem(batch, 422, "invalid-request", pointer="/upsert/1/user_id")
        assert body["errors"][0]["index"] == 1


def test_a_reference_to_another_business_record_is_422(
    api: Api, other_api: Api, refs: dict[str, str]
) -> None:
    other_api.put("users", "theirs", record("users", "theirs"))
    with nothing_written(api):
        response = api.put(
            "memberships", "m-2", record("memberships", "m-2", refs, user_id="theirs")
        )
        assert_problem(response, 422, "invalid-request", pointer="/user_id")


def test_a_naive_datetime_in_a_write_is_422(api: Api, refs: dict[str, str]) -> None:
    naive = record("checkins", "c-2", refs, checked_in_at="2026-03-14T15:09:26")
    with nothing_written(api):
        body = assert_problem(
            api.put("checkins", "c-2", naive), 422, "invalid-request", pointer="/checked_in_at"
        )
        assert "timezone" in body["detail"]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"])
def test_a_datetime_at_the_end_of_time_is_422(api: Api, refs: dict[str, str], value: str) -> None:
    with nothing_written(api):
        response = api.put("checkins", "c-2", record("checkins", "c-2", refs, checked_in_at=value))
        assert_problem(response, 422, "invalid-request", pointer="/checked_in_at")


@pytest.mark.parametrize("param", ["modified_since", "modified_before"])
def test_a_naive_datetime_in_a_query_is_400(api: Api, param: str) -> None:
    response = api.get("/v1/users", params={param: "2026-03-14T15:09:26"})
    body = assert_problem(response, 400, "bad-request", pointer=param)
    assert "no offset" in body["detail"] and "2026-03-14T15:09:26Z" in body["detail"]


def test_an_unencoded_plus_in_an_offset_gets_a_hint(api: Api) -> None:
    response = api.get("/v1/users?modified_since=2026-03-14T15:09:26+01:00")
    body = assert_problem(response, 400, "bad-request", pointer="modified_since")
    assert "%2B" in body["detail"]


@pytest.mark.parametrize(
    ("resource", "field", "value"),
    [
        ("locations", "timezone", "Mars/Olympus_Mons"),
        ("locations", "timezone", "../../../etc/passwd"),
        ("locations", "timezone", ""),
        ("sales", "pre_tax_price", "NaN"),
        ("sales", "pre_tax_price", "Infinity"),
        ("sales", "pre_tax_price", "-Infinity"),
        ("sales", "pre_tax_price", "sNaN"),
        ("sales", "pre_tax_price", "1e999999999"),
        ("users", "first_name", "Ann\x00"),
        ("users", "parent_id", "use-1\x00"),
        ("users", "id", "u\t2"),
    ],
)
def test_a_value_outside_the_rules_is_422(
    api: Api, refs: dict[str, str], resource: str, field: str, value: str
) -> None:
    record_id = value if field == "id" else "new-1"
    body = record(resource, record_id, refs, **{field: value})
    with nothing_written(api):
        response = api.put(resource, quote(record_id, safe=""), body)
        assert_problem(response, 422, "invalid-request", pointer=f"/{field}")


def test_a_nul_character_anywhere_in_a_write_is_422(api: Api, refs: dict[str, str]) -> None:
    with nothing_written(api):
        single = api.put("users", "u-2", record("users", "u-2", extra={"note": "a\x00b"}))
        body = assert_problem(single, 422, "invalid-request", pointer="/extra/note")
        assert "NUL" in body["detail"]
        nested = {"a/b": {"k\x00": 1}}
        batch = api.batch("users", [record("users", "u-2"), record("users", "u-3", extra=nested)])
        body = assert_problem(batch, 422, "invalid-request", pointer="/upsert/1/extra/a~1b/k\x00")
        assert body["errors"][0]["index"] == 1
    # An escaped backslash followed by "u0000" is text, not a NUL.
    text = api.put("users", "u-4", record("users", "u-4", first_name="C:\\u0000"))
    assert text.status_code == 201 and text.json()["first_name"] == "C:\\u0000"


def test_a_line_break_in_a_url_id_is_refused_saying_why(api: Api, refs: dict[str, str]) -> None:
    with nothing_written(api):
        response = api.put("users", "u%0A2", record("users", "u\n2"))
        body = assert_problem(response, 422, "invalid-request", pointer="/id")
        assert "control characters" in body["detail"]
    body = assert_problem(api.get("/v1/users/u%0A2"), 400, "bad-request", pointer="record_id")
    assert "control characters" in body["detail"]


@pytest.mark.parametrize("reserved", ["batch", "lookup"])
def test_the_names_of_endpoints_cannot_be_ids(api: Api, reserved: str) -> None:
    """/v1/users/batch is the batch endpoint, so no record may be called "batch"."""
    with nothing_written(api):
        response = api.batch("users", [record("users", reserved)])
        body = assert_problem(response, 422, "invalid-request", pointer="/upsert/0/id")
        assert f"{reserved!r} cannot be an id" in body["detail"]
        put = api.client.put(f"/v1/users/{reserved}", json={}, headers=api.tenant.write_headers)
        assert_problem(put, 405, "method-not-allowed")
        allowed = {"batch": "POST", "lookup": "GET, HEAD, POST", "summary": "GET, HEAD"}
        assert put.headers["allow"] == allowed[reserved]


# Query parameters


@pytest.mark.parametrize("limit", ["0", "10001", "abc", "", "-1", "1.5", "²", "５"])
def test_a_limit_outside_1_to_10000_is_400(api: Api, limit: str) -> None:
    body = assert_problem(
        api.get("/v1/users", params={"limit": limit}), 400, "bad-request", pointer="limit"
    )
    assert "1 to 10,000" in body["detail"]


def test_limits_at_the_bounds_are_accepted(api: Api) -> None:
    assert api.get("/v1/users", params={"limit": "1"}).status_code == 200
    assert api.get("/v1/users", params={"limit": "10000"}).status_code == 200


def test_unknown_and_repeated_parameters_are_400(api: Api) -> None:
    body = assert_problem(
        api.get("/v1/users", params={"user": "u-1"}), 400, "bad-request", pointer="user"
    )
    assert "home_location_id" in body["detail"]
    assert_problem(api.get("/v1/locations?user_id=u-1"), 400, "bad-request", pointer="user_id")
    assert_problem(api.get("/v1/users?limit=1&limit=2"), 400, "bad-request", pointer="limit")
    assert_problem(api.get("/v1/users?ids=a&ids=b"), 400, "bad-request", pointer="ids")


@pytest.mark.parametrize(
    "other",
    [
        "modified_since=2026-01-01T00:00:00Z",
        "modified_after=2026-01-01T00:00:00Z",
        "modified_before=2026-01-01T00:00:00Z",
        "cursor=abc",
    ],
)
def test_ids_combined_with_another_parameter_is_400(api: Api, other: str) -> None:
    body = assert_problem(api.get(f"/v1/users?ids=a&{other}"), 400, "bad-request", pointer="ids")
    assert "cannot be combined" in body["detail"]


@pytest.mark.parametrize("before", ["2026-01-01T00:00:00Z", "2025-12-31T23:59:59.999999Z"])
def test_modified_before_not_after_modified_since_is_400(api: Api, before: str) -> None:
    params = {"modified_since": "2026-01-01T00:00:00Z", "modified_before": before}
    assert_problem(
        api.get("/v1/users", params=params), 400, "bad-request", pointer="modified_before"
    )


def test_an_invalid_filter_value_is_400(api: Api) -> None:
    assert_problem(
        api.get("/v1/checkins", params={"user_id": "x" * 65}), 400, "bad-request", pointer="user_id"
    )


# Cursors


def _first_cursor(api: Api, path: str = "/v1/users") -> str:
    for i in range(2):
        api.put("users", f"cursor-{i}", record("users", f"cursor-{i}"))
    page = api.get(path, params={"limit": 1})
    assert page.status_code == 200
    cursor: str = page.json()["next_cursor"]
    assert cursor
    return cursor


def test_a_tampered_cursor_is_400(api: Api) -> None:
    cursor = _first_cursor(api)
    middle = len(cursor) // 2
    flipped = cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :]
    for bad in (flipped, cursor[:-2], cursor + "AA", "abc", "!!!!", "é", ""):
        body = assert_problem(
            api.get("/v1/users", params={"limit": 1, "cursor": bad}),
            400,
            "bad-request",
            pointer="cursor",
        )
        assert "next_cursor" in body["detail"]


def test_another_business_cursor_is_400(api: Api, other_api: Api) -> None:
    theirs = _first_cursor(other_api)
    api.put("users", "mine", record("users", "mine"))
    response = api.get("/v1/users", params={"limit": 1, "cursor": theirs})
    body = assert_problem(response, 400, "bad-request", pointer="cursor")
    assert "another business" in body["detail"]
    assert "cursor-" not in response.text


def test_a_cursor_of_another_query_is_400(api: Api) -> None:
    cursor = _first_cursor(api)
    assert_problem(
        api.get("/v1/memberships", params={"limit": 1, "cursor": cursor}), 400, "bad-request"
    )
    filtered = {"limit": 1, "cursor": cursor, "home_location_id": "x"}
    assert_problem(api.get("/v1/users", params=filtered), 400, "bad-request")


# Id lists


def test_more_than_1000_ids_in_a_get_is_400_pointing_to_lookup(api: Api) -> None:
    ids = ",".join(str(i) for i in range(10_001))
    body = assert_problem(api.get(f"/v1/users?ids={ids}"), 400, "bad-request", pointer="ids")
    assert "POST up to 10,000 to /v1/users/lookup" in body["detail"]
    over = ",".join(str(i) for i in range(1_001))
    assert_problem(api.get(f"/v1/users?ids={over}"), 400, "bad-request", pointer="ids")
    at_limit = api.get("/v1/users?ids=" + ",".join(str(i) for i in range(1_000)))
    assert at_limit.status_code == 200
    assert len(at_limit.json()["missing"]) == 1_000


def test_more_than_10000_ids_in_a_lookup_is_400(api: Api) -> None:
    response = api.post("/v1/users/lookup", json={"ids": [str(i) for i in range(10_001)]})
    body = assert_problem(response, 400, "bad-request", pointer="/ids")
    assert "10,001" in body["detail"]
    at_limit = api.post("/v1/users/lookup", json={"ids": [str(i) for i in range(10_000)]})
    assert at_limit.status_code == 200
    assert len(at_limit.json()["missing"]) == 10_000


@pytest.mark.parametrize(
    ("ids", "pointer"), [(["ok", ""], "/ids/1"), (["a\x00"], "/ids/0"), (["x" * 65], "/ids/0")]
)
def test_an_invalid_id_in_a_lookup_is_422(api: Api, ids: list[str], pointer: str) -> None:
    response = api.post("/v1/users/lookup", json={"ids": ids})
    assert_problem(response, 422, "invalid-request", pointer=pointer)


def test_an_invalid_id_in_a_url_is_400(api: Api) -> None:
    for response in (
        api.get("/v1/users/a%00b"),
        api.get("/v1/users/" + "x" * 65),
        api.delete("users", "a%00b"),
    ):
        assert_problem(response, 400, "bad-request", pointer="record_id")


# Bodies


def test_invalid_utf8_in_a_body_is_400(api: Api, refs: dict[str, str]) -> None:
    with nothing_written(api):
        for response in (
            _put_raw(api, "/v1/users/u-2", b'{"first_name": "\xff", "last_name": "x"}'),
            _post_raw(api, "/v1/users/batch", b'{"upsert": [{"id": "\xc3\x28"}]}'),
            api.post("/v1/users/lookup", content=b'{"ids": ["\xff"]}'),
        ):
            body = assert_problem(response, 400, "bad-request")
            assert "UTF-8" in body["detail"]


@pytest.mark.parametrize(
    ("content", "status", "phrase"),
    [
        (b"", 400, "empty"),
        (b"  \n", 400, "empty"),
        (b"first_name=Ann", 400, "not valid JSON"),
        (b'{"', 400, "not valid JSON"),
        (b"null", 422, "Expected `object`"),
        (b"[]", 422, "Expected `object`"),
        (b'"Ann"', 422, "Expected `object`"),
    ],
)
def test_an_empty_or_non_json_body_is_refused(
    api: Api, refs: dict[str, str], content: bytes, status: int, phrase: str
) -> None:
    slug = "bad-request" if status == 400 else "invalid-request"
    with nothing_written(api):
        for response in (
            _put_raw(api, "/v1/users/u-2", content),
            _post_raw(api, "/v1/users/batch", content),
            api.post("/v1/users/lookup", content=content),
        ):
            body = assert_problem(response, status, slug)
            assert phrase in body["detail"]


def test_deeply_nested_json_is_400(api: Api, refs: dict[str, str]) -> None:
    nested = b"[" * 5_000 + b"]" * 5_000
    content = b'{"first_name": "A", "last_name": "B", "extra": {"deep": ' + nested + b"}}"
    with nothing_written(api):
        body = assert_problem(_put_raw(api, "/v1/users/u-2", content), 400, "bad-request")
        assert "too deeply" in body["detail"]


def test_a_body_id_that_differs_from_the_url_is_422(api: Api, refs: dict[str, str]) -> None:
    with nothing_written(api):
        response = api.put("users", "u-2", record("users", "u-3"))
        body = assert_problem(response, 422, "invalid-request", pointer="/id")
        assert "'u-3'" in body["detail"] and "'u-2'" in body["detail"]


# Batches


def test_one_bad_record_among_9999_good_ones_writes_nothing(api: Api, refs: dict[str, str]) -> None:
    records = [record("memberships", f"bulk-{i}", refs) for i in range(10_000)]
    records[5_000]["user_id"] = "ghost"
    with nothing_written(api):
        response = api.batch("memberships", records)
        body = assert_problem(response, 422, "invalid-request")
        assert body["errors"] == [
            {
                "detail": "user_id names users record 'ghost', which this business does not have; "
                "write that record first",
                "pointer": "/upsert/5000/user_id",
                "index": 5000,
            }
        ]
        records[5_000]["user_id"] = refs["users"]
        records[5_000]["join_date"] = "soon"
        response = api.batch("memberships", records)
        body = assert_problem(response, 422, "invalid-request", pointer="/upsert/5000/join_date")
        assert body["errors"][0]["index"] == 5000


def test_duplicate_and_conflicting_ids_in_a_batch_are_422(api: Api, refs: dict[str, str]) -> None:
    user = refs["users"]
    with nothing_written(api):
        twice = api.batch("users", [record("users", "a"), record("users", "a")])
        body = assert_problem(twice, 422, "invalid-request", pointer="/upsert/1/id")
        assert body["errors"][0]["index"] == 1 and "twice" in body["detail"]

        both = api.batch("users", [record("users", user)], [user])
        body = assert_problem(both, 422, "invalid-request", pointer="/delete/0")
        assert "both upserted and deleted" in body["detail"]

        deleted_twice = api.batch("users", [], [user, user])
        assert_problem(deleted_twice, 422, "invalid-request", pointer="/delete/1")

        no_id = api.batch("users", [{k: v for k, v in record("users", "x").items() if k != "id"}])
        assert_problem(no_id, 422, "invalid-request", pointer="/upsert/0/id")


def test_deleting_an_unknown_id_is_a_no_op_in_a_batch_and_404_alone(
    api: Api, refs: dict[str, str]
) -> None:
    """A POS may resend deletes (even of purged records); one DELETE of a stranger is a 404."""
    batch = api.batch("users", [record("users", "new")], [refs["users"], "ghost"])
    assert batch.status_code == 200
    assert {k: batch.json()[k] for k in ("created", "deleted", "unchanged")} == {
        "created": 1,
        "deleted": 1,
        "unchanged": 1,
    }
    with nothing_written(api):
        single = api.delete("users", "ghost")
        body = assert_problem(single, 404, "not-found")
        assert "'ghost'" in body["detail"]


def test_a_batch_over_10000_records_is_422(api: Api) -> None:
    with nothing_written(api):
        response = api.batch("users", [], [str(i) for i in range(10_001)])
        body = assert_problem(response, 422, "invalid-request", pointer="/delete")
        assert "10000" in body["detail"]


def test_an_invalid_idempotency_key_is_400(api: Api, refs: dict[str, str]) -> None:
    with nothing_written(api):
        for key in ("", "k" * 256):
            response = api.client.put(
                "/v1/users/u-2",
                json=record("users", "u-2"),
                headers={**api.tenant.write_headers, "Idempotency-Key": key},
            )
            assert_problem(response, 400, "bad-request", pointer="Idempotency-Key")


# HTTP limits and methods


def test_an_oversized_body_is_413(small_server: Server, api: Api, refs: dict[str, str]) -> None:
    big = record("users", "u-2", extra={"notes": "x" * SMALL_BODY})
    with httpx.Client(base_url=small_server.base_url, timeout=60) as small_client:
        small = Api(small_client, api.tenant)
        with nothing_written(api):
            declared = small.put("users", "u-2", big)
            body = assert_problem(declared, 413, "content-too-large")
            assert "4,096 bytes" in body["detail"]

            streamed = small_client.put(
                "/v1/users/u-2",
                content=iter(
                    [
                        b'{"first_name": "A", "last_name": "B", "extra": {"x": "',
                        b"x" * 5_000,
                        b'"}}',
                    ]
                ),
                headers=api.tenant.write_headers,
            )
            assert "content-length" not in streamed.request.headers
            assert_problem(streamed, 413, "content-too-large")
            assert_problem(small.batch("users", [big]), 413, "content-too-large")

        fits = small.put("users", "u-2", record("users", "u-2"))
        assert fits.status_code == 201


def test_an_oversized_query_string_is_414(api: Api) -> None:
    response = api.get("/v1/users?ids=" + "a" * 61_437)
    body = assert_problem(response, 414, "uri-too-long")
    assert "61,441 bytes" in body["detail"] and "lookup" in body["detail"]
    just_fits = api.get("/v1/users?ids=" + "a" * 61_436)
    assert_problem(just_fits, 400, "bad-request", pointer="ids")


@pytest.mark.parametrize("query", ["ids=%FF", "%FF=1", "user_id=%C3%28", "ids=a%ED%A0%80"])
def test_invalid_utf8_in_a_query_string_is_400(api: Api, query: str) -> None:
    body = assert_problem(api.get(f"/v1/checkins?{query}"), 400, "bad-request")
    assert "UTF-8" in body["detail"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/v1/users/u-1", "DELETE, GET, HEAD, PUT"),
        ("PATCH", "/v1/users/u-1", "DELETE, GET, HEAD, PUT"),
        ("DELETE", "/v1/users", "GET, HEAD"),
        ("PUT", "/v1/users", "GET, HEAD"),
        ("PATCH", "/v1/users/batch", "POST"),
        ("GET", "/v1/users/batch", "POST"),
        ("PUT", "/v1/users/lookup", "GET, HEAD, POST"),
        ("POST", "/healthz", "GET, HEAD"),
    ],
)
def test_a_wrong_method_is_405_listing_the_allowed_ones(
    api: Api, method: str, path: str, allowed: str
) -> None:
    response = api.client.request(method, path, headers=api.tenant.write_headers, content=b"{}")
    body = assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == allowed
    assert body["detail"] == f"{method} is not allowed on {path}; use {allowed}."


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /v1/users?ids=\xff HTTP/1.1\r\nHost: t\r\n\r\n",
        b"PUT /v1/users/a HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n{}",
        b"GET /v1/users HTTP/1.1\r\nHost t\r\n\r\n",
    ],
)
def test_a_request_the_http_server_refuses_leaks_nothing(
    server: Server, request_bytes: bytes
) -> None:
    status, _headers, body = raw_http(server.base_url, request_bytes)
    assert status == 400
    assert not any(marker.encode() in body for marker in LEAK_MARKERS), body


def test_a_url_past_what_the_parser_can_hold_is_414_problem_json(server: Server) -> None:
    """Over 65,535 bytes httptools cannot parse a URL; the edge answers 414 in problem+json."""
    request = b"GET /v1/users/lookup?ids=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
    status, headers, body = raw_http(server.base_url, request)
    assert (status, headers["content-type"]) == (414, "application/problem+json")
    assert json.loads(body)["type"] == "/problems/uri-too-long"
    assert b"aaaa" not in body


# A real failure inside the service: a table gone from under it.


@pytest.fixture
def broken_server(db_url: str, tmp_path: Path) -> Iterator[tuple[Server, Tenant]]:
    """A server on its own database whose users table is dropped once it is running."""
    url, drop = _scratch_database(db_url, tmp_path)
    engine = make_engine(url)
    try:
        upgrade(engine)
        tenant = new_tenant(engine)
        with Server(Settings(database_url=url)) as running:
            with write_transaction(engine) as conn:
                conn.execute(text("DROP TABLE users"))
            yield running, tenant
    finally:
        engine.dispose()
        drop()


def _scratch_database(db_url: str, tmp_path: Path) -> tuple[str, Any]:
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'broken.db'}", lambda: None
    name = f"clubfeed_broken_{uuid.uuid4().hex[:8]}"
    admin = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(db_url).set(database=name).render_as_string(hide_password=False), drop


def test_an_internal_failure_is_a_500_problem_without_internals(
    broken_server: tuple[Server, Tenant],
) -> None:
    running, tenant = broken_server
    # The server drops a connection whose request failed, so none is reused.
    read = {**tenant.read_headers, "Connection": "close"}
    write = {**tenant.write_headers, "Connection": "close"}
    with httpx.Client(base_url=running.base_url, timeout=60) as client:
        for response in (
            client.get("/v1/users", headers=read),
            client.get("/v1/users", params={"modified_since": EPOCH}, headers=read),
            client.put("/v1/users/u-1", json=record("users", "u-1"), headers=write),
        ):
            body = assert_problem(response, 500, "internal-error")
            assert body["detail"].startswith(
                "Something went wrong on our side; nothing was written."
            )
            assert "users" not in response.text and "table" not in response.text
        assert client.get("/healthz").status_code == 200


def test_an_internal_failure_of_a_read_is_recorded_as_500_in_the_activity(
    broken_server: tuple[Server, Tenant],
) -> None:
    running, tenant = broken_server
    read = {**tenant.read_headers, "Connection": "close"}
    with httpx.Client(base_url=running.base_url, timeout=60) as client:
        assert client.get("/v1/users", headers=read).status_code == 500
        assert client.get("/v1/users/u-1", headers=read).status_code == 500
        assert client.get("/v1/locations", headers=read).status_code == 200

    # The server runs in this process: write its buffered activity now, not in a second.
    app_state: AppState = running.server.config.app.state.clubfeed
    app_state.recorder.flush()
    with read_connection(app_state.engine) as conn:
        rows = conn.execute(
            select(api_activity.c.path, api_activity.c.status)
            .where(api_activity.c.business_id == tenant.business.id)
            .order_by(api_activity.c.id)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("/v1/users", 500),
        ("/v1/users/u-1", 500),
        ("/v1/locations", 200),
    ]
