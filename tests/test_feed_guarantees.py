"""The feed's promise through real HTTP, on SQLite and PostgreSQL (DESIGN's feed proof 6 and more).

A poller that starts each window at the previous response's consistent_until
never misses and never repeats a change; a complete transfer followed by range
polls from its consistent_until ends equal to the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
from sqlalchemy import Engine

from clubfeed.timefmt import format_us
from tests.factories import Api, record
from tests.feedkit import PER_RECORD, Poller, change_seqs, http_fetch, ids, live_records, us
from tests.problemkit import assert_problem


def _poller(api: Api) -> Poller:
    return Poller(http_fetch(api.client, api.tenant.read_headers))


def _ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code in (200, 201), response.text
    return response


def test_writes_during_a_paged_complete_transfer_are_caught_by_one_range_poll(
    db: Engine, api: Api
) -> None:
    """Inserts, updates (of pages read and unread), deletes, a re-create and a resend between pages.

    The transfer returns what stood when it began, minus records changed before
    their page was read; one range poll from its consistent_until brings exactly
    the records changed during it; the copy then equals the table.
    """
    seeded = [f"u{i:02d}" for i in range(40)]
    _ok(api.batch("users", upsert=[record("users", i) for i in seeded]))
    actions: list[Callable[[], httpx.Response]] = [
        lambda: api.put("users", "new-1", record("users", "new-1")),
        lambda: api.put("users", "u00", record("users", "u00", first_name="after its page")),
        lambda: api.put("users", "u30", record("users", "u30", first_name="before its page")),
        lambda: api.delete("users", "u01"),
        lambda: api.delete("users", "u35"),
        lambda: api.put("users", "u01", record("users", "u01", first_name="back again")),
        lambda: api.batch(
            "users",
            upsert=[record("users", "new-2"), record("users", "u02")],
            delete=["new-1"],
        ),
    ]
    script: Iterator[Callable[[], httpx.Response]] = iter(actions)

    def between_pages() -> None:
        action = next(script, None)
        if action is not None:
            _ok(action())

    poller = _poller(api)
    transferred = poller.transfer(limit=5, between_pages=between_pages)
    assert next(script, None) is None, "the transfer ended before every write ran"
    assert ids(transferred) == [i for i in seeded if i not in ("u30", "u35")]

    caught = poller.poll(limit=2)
    assert sorted(ids(caught)) == sorted(["new-1", "u00", "u30", "u01", "u35", "new-2"])
    assert {r["id"] for r in caught if r.get("deleted")} == {"u35", "new-1"}
    assert poller.copy == live_records(db, api.tenant.business.id)
    assert poller.poll() == []


def test_a_range_ending_below_the_clock_is_consistent_until_its_end(api: Api) -> None:
    """modified_before in the past caps consistent_until at it; the window holds exactly its rows.

    A window ending beyond the last change is consistent only up to that change
    (the clock), never further: a writer's clock may lag the reader's.
    """
    pair = [record("users", "a1"), record("users", "a2")]
    first = us(_ok(api.batch("users", upsert=pair)).json()["modified_at"])
    second = us(_ok(api.put("users", "b1", record("users", "b1"))).json()["modified_at"])
    third = us(_ok(api.put("users", "c1", record("users", "c1"))).json()["modified_at"])

    def window(since: int | None, before: int | None) -> tuple[list[str], int]:
        params = {"limit": "1"}
        if since is not None:
            params["modified_since"] = format_us(since)
        if before is not None:
            params["modified_before"] = format_us(before)
        records = api.read_all("/v1/users", **params)
        until = api.get("/v1/users", params=params).json()["consistent_until"]
        return ids(records), us(until)

    assert window(first, second) == (["a1", "a2"], second)
    assert window(None, second) == (["a1", "a2"], second)
    assert window(second, second + 1) == (["b1"], second + 1)
    assert window(second, third) == (["b1"], third)
    assert window(first, third + 1) == (["a1", "a2", "b1", "c1"], third + 1)
    assert window(third, third + 3_600_000_000) == (["c1"], third + 1)
    assert window(third + 1, None) == ([], third + 1)

    fourth = us(_ok(api.put("users", "d1", record("users", "d1"))).json()["modified_at"])
    assert fourth >= third + 1
    assert window(third + 1, None) == (["d1"], fourth + 1)


def test_an_updated_record_arrives_again_in_the_next_window_exactly_once(api: Api) -> None:
    """An update restamps the record: the next window holds its new body, once; later ones do not."""
    for record_id in ("u1", "u2"):
        _ok(api.put("users", record_id, record("users", record_id)))
    poller = _poller(api)
    first = poller.poll()
    assert ids(first) == ["u1", "u2"]

    updated = _ok(api.put("users", "u1", record("users", "u1", first_name="Renamed"))).json()
    again = poller.poll()
    assert again == [updated]
    assert updated["first_name"] == "Renamed"
    assert us(updated["modified_at"]) > us(first[0]["modified_at"])
    assert updated["created_at"] == first[0]["created_at"]
    assert poller.poll() == []
    assert poller.copy["u1"] == updated


def test_resending_an_identical_record_does_not_create_a_change(db: Engine, api: Api) -> None:
    """A PUT or batch of exactly what is stored changes nothing: same body, same seq, no window."""
    body = record("users", "u1")
    created = _ok(api.put("users", "u1", body))
    assert created.status_code == 201
    poller = _poller(api)
    assert poller.poll() == [created.json()]
    seqs = change_seqs(db, api.tenant.business.id)

    resent = _ok(api.put("users", "u1", body))
    assert resent.status_code == 200 and resent.json() == created.json()
    summary = _ok(api.batch("users", upsert=[body])).json()
    assert (summary["created"], summary["updated"], summary["unchanged"]) == (0, 0, 1)

    assert poller.poll() == []
    assert change_seqs(db, api.tenant.business.id) == seqs


def test_modified_after_is_exclusive_and_a_per_record_bookmark_misses_and_repeats_nothing(
    db: Engine, api: Api
) -> None:
    """modified_after T holds what changed after T: a batch's records share one instant, so
    a bookmark of the greatest modified_at seen neither repeats that batch nor skips the next.
    """
    first = _ok(api.batch("users", upsert=[record("users", i) for i in ("a1", "a2", "a3")]))
    batch_at = first.json()["modified_at"]
    b1 = _ok(api.put("users", "b1", record("users", "b1"))).json()

    def after(bookmark: str, **params: str) -> list[str]:
        return ids(api.read_all("/v1/users", modified_after=bookmark, limit="2", **params))

    assert after(format_us(us(batch_at) - 1)) == ["a1", "a2", "a3", "b1"]
    assert after(batch_at) == ["b1"]
    assert after(b1["modified_at"]) == []
    assert after(batch_at, modified_before=b1["modified_at"]) == []
    assert after(format_us(us(batch_at) - 1), modified_before=b1["modified_at"]) == [
        "a1",
        "a2",
        "a3",
    ]

    poller = Poller(http_fetch(api.client, api.tenant.read_headers), style=PER_RECORD)
    assert ids(poller.poll(limit=2)) == ["a1", "a2", "a3", "b1"]
    assert poller.bookmark == b1["modified_at"]
    _ok(api.delete("users", "a2"))
    _ok(api.put("users", "a3", record("users", "a3", first_name="Renamed")))
    caught = poller.poll(limit=1)
    assert ids(caught) == ["a2", "a3"] and caught[0]["deleted"] is True
    assert poller.poll() == []
    assert poller.copy == live_records(db, api.tenant.business.id)


def test_modified_after_is_refused_beside_modified_since_or_after_its_end(api: Api) -> None:
    """One start per window; an end at or before it, or a start past the last change, is refused."""
    at = _ok(api.put("users", "u1", record("users", "u1"))).json()["modified_at"]
    both = api.get("/v1/users", params={"modified_after": at, "modified_since": at})
    assert (
        "not both" in assert_problem(both, 400, "bad-request", pointer="modified_after")["detail"]
    )

    backwards = api.get("/v1/users", params={"modified_after": at, "modified_before": at})
    detail = assert_problem(backwards, 400, "bad-request", pointer="modified_before")["detail"]
    assert detail == "modified_before must be later than modified_after."

    last = api.get("/v1/users", params={"modified_after": "9999-12-31T23:59:59.999999Z"})
    assert_problem(last, 400, "bad-request", pointer="modified_after")

    ahead = format_us(us(at) + 1)
    rewound = api.get("/v1/users", params={"modified_after": ahead})
    detail = assert_problem(rewound, 410, "history-rewound")["detail"]
    assert detail.startswith(f"modified_after {ahead} is later than this business's last change")
    # The bookmark itself is where a poller with nothing new stands: an empty page, not a 410.
    assert _ok(api.get("/v1/users", params={"modified_after": at})).json()["data"] == []
