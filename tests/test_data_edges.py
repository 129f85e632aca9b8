"""The edges of the data, through real HTTP on both databases: refused clearly, never a 500."""

from __future__ import annotations

import pytest

from tests.factories import Api, record
from tests.problemkit import assert_problem, nothing_written

# Time zones


@pytest.fixture
def refs(api: Api) -> dict[str, str]:
    return api.seed()


@pytest.mark.parametrize(
    "name",
    [
        "America",  # a directory of the zone database: once a 500
        "Etc",
        "localtime",  # the host's own zone, different on every machine
        "posixrules",
        "Factory",  # IANA's placeholder for "not configured"
        "america/new_york",
        "posix/Europe/Paris",
        "right/UTC",
    ],
)
def test_a_name_that_is_no_iana_zone_is_422(api: Api, refs: dict[str, str], name: str) -> None:
    with nothing_written(api):
        for response in (
            api.put("locations", "loc-2", record("locations", "loc-2", timezone=name)),
            api.batch("locations", [record("locations", "loc-2", timezone=name)]),
        ):
            pointer = "/timezone" if response.request.method == "PUT" else "/upsert/0/timezone"
            body = assert_problem(response, 422, "invalid-request", pointer=pointer)
            assert f"{name!r} is not an IANA time zone" in body["detail"]


@pytest.mark.parametrize("name", ["US/Eastern", "Japan", "UTC", "Etc/GMT+5", "EST5EDT"])
def test_backward_links_and_fixed_zones_are_iana_names(api: Api, name: str) -> None:
    response = api.put("locations", "loc-2", record("locations", "loc-2", timezone=name))
    assert response.status_code == 201, response.text
    assert response.json()["timezone"] == name


# Instants outside the supported range


@pytest.mark.parametrize("param", ["modified_since", "modified_before"])
@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+23:59",  # the year 0 in UTC: once a 500
        "0001-01-01T00:00:00.999999+00:01",
        "9999-12-31T23:59:59-23:59",  # the year 10000 in UTC
        "9999-12-31T23:59:59.999999-00:01",
    ],
)
def test_a_query_instant_outside_the_range_is_400(api: Api, param: str, value: str) -> None:
    body = assert_problem(api.get("/v1/users", params={param: value}), 400, "bad-request")
    assert body["errors"] == [{"detail": body["detail"], "pointer": param}]
    assert body["detail"] == (
        f"{param}: {value!r} lies outside the instants supported, "
        "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"
    )


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00Z", "0001-01-01T23:59:00+23:59"])
def test_the_first_instant_is_accepted(api: Api, value: str) -> None:
    response = api.get("/v1/users", params={"modified_before": value})
    assert response.status_code == 200, response.text
    page = response.json()
    assert (page["data"], page["next_cursor"]) == ([], None)
    assert page["consistent_until"] == "0001-01-01T00:00:00.000000+00:00"


@pytest.mark.parametrize(
    "value", ["9999-12-31T23:59:59.999999Z", "9999-12-31T00:00:00.999999-23:59"]
)
def test_the_last_instant_is_a_valid_value_ahead_of_the_feed(api: Api, value: str) -> None:
    """In range, so not a 400; but no poller can stand there yet (see test_rewind)."""
    response = api.get("/v1/users", params={"modified_since": value})
    assert_problem(response, 410, "history-rewound")


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+23:59",
        "0001-01-02T00:00:00+00:01",
        "9999-12-30T23:59:59-23:59",
        "9999-12-31T00:00:00Z",
    ],
)
def test_an_event_time_outside_the_range_is_422(api: Api, refs: dict[str, str], value: str) -> None:
    with nothing_written(api):
        response = api.put("checkins", "c-2", record("checkins", "c-2", refs, checked_in_at=value))
        body = assert_problem(response, 422, "invalid-request", pointer="/checked_in_at")
        assert "between 0001-01-02 and 9999-12-30 (UTC)" in body["detail"]


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("0001-01-02T23:59:00+23:59", "0001-01-02T00:00:00.000000+00:00"),
        ("9999-12-30T23:59:59.999999Z", "9999-12-30T23:59:59.999999+00:00"),
    ],
)
def test_the_first_and_last_event_times_are_kept(
    api: Api, refs: dict[str, str], value: str, stored: str
) -> None:
    at_utc = {**refs, "locations": "utc"}
    api.put("locations", "utc", record("locations", "utc", timezone="UTC"))
    response = api.put("checkins", "c-2", record("checkins", "c-2", at_utc, checked_in_at=value))
    assert response.status_code == 201, response.text
    assert response.json()["checked_in_at"] == stored


# Paths


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/users/%ff"),
        ("GET", "/v1/users/%fe"),
        ("GET", "/v1/%ff"),
        ("GET", "/v1/users/a%C3%28"),
        ("GET", "/v1/users/%ED%A0%80"),  # a UTF-16 surrogate, not a character
        ("PUT", "/v1/users/%ff"),
        ("DELETE", "/v1/users/%fe"),
        ("POST", "/v1/users/%ff/lookup"),
    ],
)
def test_invalid_utf8_in_a_path_is_400(api: Api, method: str, path: str) -> None:
    headers = api.tenant.write_headers if method in ("PUT", "DELETE") else api.tenant.read_headers
    body_json = record("users", "x") if method == "PUT" else {"ids": ["x"]}
    with nothing_written(api):
        response = api.client.request(
            method,
            path,
            headers=headers,
            json=body_json if method in ("PUT", "POST") else None,
        )
        body = assert_problem(response, 400, "bad-request")
        assert body["detail"].startswith("The path is not valid UTF-8 once percent-decoded")


def test_ids_differing_in_bytes_stay_apart(api: Api) -> None:
    """%C3%A9 is é; the replacement character itself, sent as UTF-8, is an id like any other."""
    for path_id, stored in (("%C3%A9", "é"), ("%EF%BF%BD", "\ufffd")):
        response = api.put("users", path_id, record("users", stored))
        assert response.status_code == 201, response.text
        assert api.get(f"/v1/users/{path_id}").json()["id"] == stored


# Batch size


def test_a_batch_counts_upserts_and_deletes_together(api: Api) -> None:
    upserts = [record("users", "u-1")]
    with nothing_written(api):
        response = api.batch("users", upserts, [f"gone-{i}" for i in range(10_000)])
        body = assert_problem(response, 422, "invalid-request", pointer="/delete/9999")
        assert body["errors"][0]["index"] == 9_999
        assert body["detail"] == (
            "A batch holds at most 10,000 items, upserts and deletes together (this one has "
            "10,001: 1 to upsert, 10,000 to delete); split it at /delete/9999. Nothing was written."
        )
    fits = api.batch("users", upserts, [f"gone-{i}" for i in range(9_999)])
    assert fits.status_code == 200, fits.text
    assert {k: v for k, v in fits.json().items() if k != "modified_at"} == {
        "created": 1,
        "updated": 0,
        "unchanged": 9_999,
        "deleted": 0,
    }
