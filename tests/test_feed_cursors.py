"""Cursors only continue the query that issued them (DESIGN's feed proof 8), through real HTTP.

A cursor carries its query's bounds, so one that was altered, or carried to
another business, resource or set of filters, would answer a different question:
each is refused with a 400 problem+json naming the cursor, on both databases.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import msgspec
import pytest
from sqlalchemy import Engine

from clubfeed.feed.cursor import load_key
from clubfeed.storage.engine import write_transaction
from tests.factories import Api, record

SINCE = "2000-01-01T00:00:00+00:00"


def _cursor(api: Api, path: str = "/v1/users", **params: str) -> str:
    response = api.get(path, params={"limit": "2", **params})
    assert response.status_code == 200, response.text
    cursor: str = response.json()["next_cursor"]
    assert cursor
    return cursor


def _reencoded(cursor: str, position: int, value: Any) -> str:
    """The cursor with one field of its signed state changed and its old signature kept."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    payload, tag = raw[:-16], raw[-16:]
    state = msgspec.msgpack.decode(payload)
    state[position] = value
    return base64.urlsafe_b64encode(msgspec.msgpack.encode(state) + tag).rstrip(b"=").decode()


def _flipped(cursor: str) -> str:
    middle = len(cursor) // 2
    return cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :]


def _assert_refused(api: Api, path: str, params: dict[str, str]) -> None:
    response = api.get(path, params=params)
    assert response.status_code == 400, (params, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400
    assert [e.get("pointer") for e in problem.get("errors", [])] == ["cursor"], problem


@pytest.fixture
def seeded(api: Api, other_api: Api) -> Api:
    for i in range(5):
        assert api.put("users", f"u{i}", record("users", f"u{i}")).status_code == 201
        assert other_api.put("users", f"u{i}", record("users", f"u{i}")).status_code == 201
        location = record("locations", f"loc-{i}")
        assert api.put("locations", f"loc-{i}", location).status_code == 201
    return api


def test_a_cursor_continues_its_own_query(seeded: Api) -> None:
    """The control: the same query (an instant written another way is the same instant) goes on."""
    complete = _cursor(seeded)
    ranged = _cursor(seeded, modified_since=SINCE)
    assert seeded.get("/v1/users", params={"cursor": complete}).status_code == 200
    same_instant = {"cursor": ranged, "modified_since": "2000-01-01T00:00:00Z"}
    assert seeded.get("/v1/users", params=same_instant).status_code == 200


def test_tampered_cursors_are_refused(seeded: Api) -> None:
    """A flipped character, a cut or padded token, garbage, or an edited position keeping its tag."""
    complete = _cursor(seeded)
    for bad in (
        _flipped(complete),
        complete[:-3],
        complete + "AAAA",
        "not-a-cursor",
        "%%%",
        "",
        _reencoded(complete, 3, 0),
        _reencoded(complete, 4, 10**12),
    ):
        _assert_refused(seeded, "/v1/users", {"cursor": bad})


def test_another_business_cannot_use_a_cursor(seeded: Api, other_api: Api) -> None:
    """A cursor names its business: another business's reader gets 400, not that business's rows."""
    _assert_refused(other_api, "/v1/users", {"cursor": _cursor(seeded)})
    _assert_refused(seeded, "/v1/users", {"cursor": _cursor(other_api)})


def test_another_resource_cannot_use_a_cursor(seeded: Api) -> None:
    """A users cursor on locations (and back) is refused."""
    _assert_refused(seeded, "/v1/locations", {"cursor": _cursor(seeded)})
    _assert_refused(seeded, "/v1/users", {"cursor": _cursor(seeded, "/v1/locations")})


def test_changed_filters_cannot_use_a_cursor(seeded: Api) -> None:
    """Adding or changing modified_since, modified_before or a field filter is refused."""
    complete = _cursor(seeded)
    ranged = _cursor(seeded, modified_since=SINCE)
    for params in (
        {"cursor": complete, "modified_since": SINCE},
        {"cursor": ranged, "modified_since": "2000-01-01T00:00:00.000001+00:00"},
        {"cursor": ranged, "modified_since": SINCE, "modified_before": "2100-01-01T00:00:00Z"},
        {"cursor": complete, "home_location_id": "loc-1"},
    ):
        _assert_refused(seeded, "/v1/users", params)


def test_a_cursor_alone_continues_the_query_it_came_from(seeded: Api) -> None:
    """A poller may send just next_cursor: the cursor carries the range and filters."""
    first = seeded.get("/v1/users", params={"modified_since": SINCE, "limit": "2"}).json()
    alone = seeded.get("/v1/users", params={"cursor": first["next_cursor"], "limit": "2"})
    repeated = seeded.get(
        "/v1/users", params={"cursor": first["next_cursor"], "limit": "2", "modified_since": SINCE}
    )
    assert alone.status_code == 200 and alone.json() == repeated.json()
    assert alone.json()["data"] and not {r["id"] for r in alone.json()["data"]} & {
        r["id"] for r in first["data"]
    }


def test_a_cursor_alone_keeps_the_limit_its_query_was_paged_with(seeded: Api) -> None:
    """A cursor sent alone pages at its query's limit, not the default; a limit sent wins."""
    first = seeded.get("/v1/users", params={"limit": "2"}).json()
    assert [r["id"] for r in first["data"]] == ["u0", "u1"]
    second = seeded.get("/v1/users", params={"cursor": first["next_cursor"]}).json()
    assert [r["id"] for r in second["data"]] == ["u2", "u3"]
    third = seeded.get("/v1/users", params={"cursor": second["next_cursor"]}).json()
    assert [r["id"] for r in third["data"]] == ["u4"] and third["next_cursor"] is None

    resized = seeded.get("/v1/users", params={"cursor": first["next_cursor"], "limit": "3"})
    assert [r["id"] for r in resized.json()["data"]] == ["u2", "u3", "u4"]
    # The Link carries only the cursor, so following it keeps the page size too.
    link = seeded.get("/v1/users", params={"limit": "1"}).headers["link"]
    target = link[1 : link.index(">")]
    followed = seeded.client.get(target, headers=seeded.tenant.read_headers).json()
    assert [r["id"] for r in followed["data"]] == ["u1"]


def test_an_old_cursor_without_a_limit_pages_at_the_default(db: Engine, seeded: Api) -> None:
    """A cursor issued before cursors carried a limit (one field fewer) still continues its query."""
    for i in range(5, 1_005):
        assert seeded.put("users", f"v{i}", record("users", f"v{i}")).status_code == 201
    cursor = _cursor(seeded)
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    state = msgspec.msgpack.decode(raw[:-16])
    assert state[-1] == 2, "the limit is the state's last field"
    with write_transaction(db) as conn:
        key = load_key(conn, None)
    payload = msgspec.msgpack.encode(state[:-1])
    tag = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    older = base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode()
    page = seeded.get("/v1/users", params={"cursor": older})
    assert page.status_code == 200, page.text
    assert len(page.json()["data"]) == 1_000
