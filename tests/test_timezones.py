"""Local times: rendered as RFC 3339 at every instant, re-rendered when a location changes zone."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import msgspec
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from clubfeed import catalogue
from clubfeed.catalogue import Kind
from clubfeed.ingest.validate import record_type, validated
from clubfeed.ingest.write import apply_changes, prepare
from clubfeed.storage.engine import write_transaction
from clubfeed.timefmt import (
    EARLIEST_US,
    LATEST_US,
    format_us,
    iana_names,
    parse_aware,
    to_us,
    zone,
)
from tests.factories import Api, record
from tests.problemkit import changes_since, consistent_until

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


def test_a_write_rendered_before_its_location_moved_is_stored_in_the_zone_it_found(
    api: Api, db: Engine
) -> None:
    # A source writer renders a page in the zones it read, then takes the business's lock;
    # a location that changed zone in between must not leave events in its old zone.
    refs = api.seed()
    api.put("locations", "nyc", record("locations", "nyc", timezone="America/New_York"))
    checkins = catalogue.get("checkins")
    body = record("checkins", "c-late", {**refs, "locations": "nyc"}, checked_in_at=WHEN)
    batch = validated(checkins, [msgspec.convert(body, record_type(checkins))], [])
    prepared = prepare(batch, {"nyc": zone("Asia/Tokyo")})
    assert prepared.rendered is not None and "+09:00" in prepared.rendered[0]
    with write_transaction(db) as conn:
        apply_changes(conn, business_id=api.tenant.business.id, batch=prepared)
    stored = api.get("/v1/checkins/c-late").json()
    assert stored["checked_in_at"] == "2026-07-01T08:00:00.250000-04:00"


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


# Offsets that are not whole minutes (local mean time before standard time) cannot be
# written in RFC 3339, so those instants render in UTC; whole-minute ones stay local.
RENDERED = {
    ("adelaide", "1890-07-15T00:00:00Z"): "1890-07-15T00:00:00.000000+00:00",  # LMT +09:14:20
    ("adelaide", "2026-01-15T00:00:00.000001Z"): "2026-01-15T10:30:00.000001+10:30",
    ("adelaide", "2026-07-15T00:00:00Z"): "2026-07-15T09:30:00.000000+09:30",
    ("monrovia", "1971-06-01T00:00:00.123456+02:00"): "1971-05-31T22:00:00.123456+00:00",
    ("monrovia", "1972-06-01T00:00:00Z"): "1972-06-01T00:00:00.000000+00:00",  # GMT since 1972
    ("new-york", "1800-01-01T12:00:00-05:00"): "1800-01-01T17:00:00.000000+00:00",  # -04:56:02
}
ZONES = {
    "adelaide": "Australia/Adelaide",
    "monrovia": "Africa/Monrovia",
    "new-york": "America/New_York",
}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$")


def _datetime_fields(resource: str) -> list[str]:
    return [f.name for f in catalogue.get(resource).fields if f.kind is Kind.DATETIME]


def _write_events(api: Api) -> dict[str, dict[str, str]]:
    """Every resource with event times, once per (location, instant); id → field → rendered."""
    refs = api.seed()
    for location, name in ZONES.items():
        assert api.put("locations", location, record("locations", location, timezone=name))
    expected: dict[str, dict[str, str]] = {}
    for resource in ("checkins", "referrals", "sales", "class-attendances", "appointments"):
        for n, ((location, sent), rendered) in enumerate(RENDERED.items()):
            record_id = f"{resource}-{n}"
            fields = dict.fromkeys(_datetime_fields(resource), sent)
            body = record(resource, record_id, {**refs, "locations": location}, **fields)
            response = api.put(resource, record_id, body)
            assert response.status_code == 201, response.text
            local = catalogue.get(resource).has_local_times
            utc = format_us(to_us(parse_aware(sent)))
            expected[record_id] = {name: rendered if local else utc for name in fields}
    return expected


def test_event_times_are_rfc3339_with_whole_minute_offsets(api: Api) -> None:
    expected = _write_events(api)
    for resource in ("checkins", "referrals", "sales", "class-attendances", "appointments"):
        for stored in api.read_all(f"/v1/{resource}"):
            if stored["id"] in expected:
                times = {name: stored[name] for name in _datetime_fields(resource)}
                assert times == expected[stored["id"]]
            for name in (*_datetime_fields(resource), "created_at", "modified_at"):
                assert RFC3339.match(stored[name]), stored


def test_every_record_written_back_as_read_is_unchanged(api: Api) -> None:
    _write_events(api)
    since = consistent_until(api, "users")
    for resource in catalogue.RESOURCES:
        records = api.read_all(f"/v1/{resource.name}")
        assert records
        result = api.batch(resource.name, records)
        assert result.status_code == 200, result.text
        counts = {k: v for k, v in result.json().items() if k != "modified_at"}
        assert counts == {"created": 0, "updated": 0, "unchanged": len(records), "deleted": 0}
        single = api.put(resource.name, records[-1]["id"], records[-1])
        assert (single.status_code, single.json()) == (200, records[-1])
    for resource in catalogue.RESOURCES:
        assert changes_since(api, resource.name, since) == []


@settings(max_examples=300, deadline=None)
@example(us=EARLIEST_US, name="Etc/GMT+12")
@example(us=LATEST_US - 1, name="Etc/GMT-14")
@example(us=-2_437_804_800_000_000, name="Australia/Adelaide")  # 1892, LMT +09:14:20
@given(
    us=st.integers(EARLIEST_US, LATEST_US - 1),
    name=st.sampled_from(sorted(iana_names())),
)
def test_any_instant_in_any_zone_renders_as_rfc3339_of_that_instant(us: int, name: str) -> None:
    text = format_us(us, zone(name))
    assert RFC3339.match(text), text
    assert to_us(msgspec.json.decode(f'"{text}"', type=datetime)) == us
