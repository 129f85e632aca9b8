"""A location changing time zone re-renders its events, and pollers receive them again once."""

from __future__ import annotations

from typing import Any

from tests.factories import Api, record

WHEN = "2026-07-01T12:00:00.250000Z"


def _changes(api: Api, resource: str, since: str) -> tuple[list[dict[str, Any]], str]:
    page = api.get(f"/v1/{resource}", params={"modified_since": since, "limit": 10_000}).json()
    assert page["next_cursor"] is None
    return page["data"], page["consistent_until"]


def _set_up(api: Api) -> str:
    """A New York location with events of every resource that renders local times."""
    refs = api.seed()
    assert api.put("locations", "nyc", record("locations", "nyc", timezone="America/New_York"))
    at_nyc = {**refs, "locations": "nyc"}
    for name in ("c-a", "c-b", "c-gone"):
        assert api.put("checkins", name, record("checkins", name, at_nyc, checked_in_at=WHEN))
    assert api.delete("checkins", "c-gone").status_code == 200
    api.put("sales", "s-1", record("sales", "s-1", at_nyc, sold_at=WHEN))
    api.put(
        "class-attendances",
        "ca-1",
        record("class-attendances", "ca-1", at_nyc, class_at=WHEN, checked_in_at=None),
    )
    api.put("appointments", "ap-1", record("appointments", "ap-1", at_nyc, appointment_at=WHEN))
    _, since = _changes(api, "locations", "2000-01-01T00:00:00Z")
    return since


def test_a_new_zone_restamps_every_live_event_at_the_location_once(api: Api) -> None:
    since = _set_up(api)
    moved = api.put("locations", "nyc", record("locations", "nyc", timezone="Asia/Tokyo")).json()

    checkins, _ = _changes(api, "checkins", since)
    assert [(c["id"], c["checked_in_at"]) for c in checkins] == [
        ("c-a", "2026-07-01T21:00:00.250000+09:00"),
        ("c-b", "2026-07-01T21:00:00.250000+09:00"),
    ]
    assert {c["modified_at"] for c in checkins} == {moved["modified_at"]}
    assert _changes(api, "sales", since)[0][0]["sold_at"] == "2026-07-01T21:00:00.250000+09:00"
    attendance = _changes(api, "class-attendances", since)[0][0]
    assert (attendance["class_at"], attendance["checked_in_at"]) == (
        "2026-07-01T21:00:00.250000+09:00",
        None,
    )
    appointment = _changes(api, "appointments", since)[0][0]
    assert appointment["appointment_at"] == "2026-07-01T21:00:00.250000+09:00"
    # Events elsewhere keep their offsets and stay out of the window.
    assert api.get("/v1/checkins/che-1").json()["checked_in_at"].endswith("-04:00")


def test_an_alias_of_the_same_zone_restamps_nothing(api: Api) -> None:
    api.put("locations", "tokyo", record("locations", "tokyo", timezone="Asia/Tokyo"))
    api.put("users", "u", record("users", "u"))
    api.put("checkins", "c", record("checkins", "c", {"locations": "tokyo", "users": "u"}))
    _, since = _changes(api, "checkins", "2000-01-01T00:00:00Z")

    api.put("locations", "tokyo", record("locations", "tokyo", timezone="Japan"))

    assert _changes(api, "checkins", since)[0] == []
    assert [loc["timezone"] for loc in _changes(api, "locations", since)[0]] == ["Japan"]


def test_a_location_re_created_in_another_zone_restamps_its_events(api: Api) -> None:
    since = _set_up(api)
    assert api.delete("locations", "nyc").status_code == 200
    api.put("locations", "nyc", record("locations", "nyc", timezone="Europe/London"))

    checkins, _ = _changes(api, "checkins", since)
    assert {c["id"]: c["checked_in_at"] for c in checkins} == {
        "c-a": "2026-07-01T13:00:00.250000+01:00",
        "c-b": "2026-07-01T13:00:00.250000+01:00",
    }
