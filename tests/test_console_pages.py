"""The console's pages against real data: records written through the ingest API, reads made
through the feed, and what the overview, shared secret, connected apps and activity pages
show and change as a result."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import Engine, select

from clubfeed.auth import sessions
from clubfeed.auth.credentials import token_hash
from clubfeed.storage.schema import console_flashes
from tests.conftest import Server
from tests.consolekit import (
    PAGES,
    assert_security_headers,
    csrf_of,
    logged_in,
    new_admin,
    table,
    text_of,
)
from tests.factories import WRITE_ORDER, Api, Tenant, new_integrator, new_tenant, record
from tests.oauthkit import connect


@pytest.fixture
def feed(console: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=console.base_url, timeout=60) as http:
        yield http


@pytest.fixture
def owner(db: Engine, tenant: Tenant, console: Server) -> Iterator[httpx.Client]:
    """The tenant's admin, logged in."""
    with logged_in(console.base_url, new_admin(db, tenant.business.id).email) as browser:
        yield browser


def _read(feed: httpx.Client, tenant: Tenant, headers: dict[str, str] | None = None) -> int:
    return feed.get("/v1/checkins", headers=headers or tenant.read_headers).status_code


def _rows(browser: httpx.Client, page: str, table_id: str) -> list[list[str]]:
    """A table's body rows (its header row dropped)."""
    response = browser.get(page)
    assert response.status_code == 200, response.text
    return table(response.text, table_id)[1:]


def _flashes(db: Engine, browser: httpx.Client) -> list[bytes]:
    """The flashes waiting for this browser's session, as stored."""
    session_hash = token_hash(browser.cookies[sessions.COOKIE])
    query = select(console_flashes.c.sealed).where(console_flashes.c.session_hash == session_hash)
    with db.connect() as conn:
        return list(conn.execute(query).scalars())


def _near_now(shown: str) -> bool:
    when = datetime.strptime(shown, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
    return abs(datetime.now(UTC) - when) < timedelta(minutes=2)


def _seed_counts(api: Api) -> dict[str, int]:
    """Write 1, 2, … 12 records of the resources in write order (3 locations, one then deleted,
    and a check-in deleted), all through the ingest API; returns the live counts to expect."""
    refs: dict[str, str] = {}
    expected: dict[str, int] = {}
    for n, name in enumerate(WRITE_ORDER, start=1):
        bodies = [record(name, f"{name[:3]}-{k}", refs) for k in range(n)]
        if name == "locations":
            places = [
                ("Downtown", "Boston", "America/New_York"),
                ("Bayside", "Adelaide", "Australia/Adelaide"),
            ]
            bodies = [
                record(name, f"loc-{k}", name=place, city=city, timezone=zone)
                for k, (place, city, zone) in enumerate([*places, ("Closed", "Nowhere", "UTC")])
            ]
        response = api.batch(name, upsert=bodies)
        assert response.status_code == 200, response.text
        refs[name] = bodies[0]["id"]
        expected[name] = len(bodies)
    for name, record_id in (("locations", "loc-2"), ("checkins", "che-3")):
        assert api.delete(name, record_id).status_code == 200
        expected[name] -= 1
    return expected


# Overview


def test_overview_counts_live_records_of_each_resource_exactly(
    db: Engine, tenant: Tenant, feed: httpx.Client, owner: httpx.Client
) -> None:
    expected = _seed_counts(Api(feed, tenant))
    Api(feed, new_tenant(db)).seed()  # another business's records are not counted

    page = owner.get("/console")

    assert page.status_code == 200
    assert text_of(page.text, "business-name") == "Test Gym"
    assert {
        name: int(text_of(page.text, f"count-{name}").replace(",", "")) for name in expected
    } == expected
    assert expected["checkins"] == 3 and expected["locations"] == 2
    assert table(page.text, "locations") == [
        ["Name", "City", "Time zone"],
        ["Bayside", "Adelaide", "Australia/Adelaide"],
        ["Downtown", "Boston", "America/New_York"],
    ]


def test_overview_of_a_new_business_is_empty_but_complete(owner: httpx.Client) -> None:
    page = owner.get("/console").text
    for name in WRITE_ORDER:
        assert text_of(page, f"count-{name}") == "0"
    assert "No locations yet" in page
    assert "No app has read your data yet" in page
    assert text_of(page, "zone-note") == (
        "Times are in UTC, as your business has no location with a time zone yet. "
        "Point at a time to see it in UTC."
    )


def test_overview_shows_when_each_app_last_read(
    db: Engine, tenant: Tenant, feed: httpx.Client, owner: httpx.Client
) -> None:
    second = new_integrator(db, "Second Loyalty")
    assert _read(feed, tenant) == 200
    # The recorder writes every second; the console flushes first, so the read shows at once.
    rows = _rows(owner, "/console", "last-reads")
    assert len(rows) == 1
    name, last_read, via, status = rows[0]
    assert (name, via, status) == ("Test Loyalty", "Shared secret", "Active")
    assert _near_now(last_read)

    headers = {**tenant.read_headers, "X-Integrator-Key": second.key}
    assert _read(feed, tenant, headers) == 200
    assert {row[0] for row in _rows(owner, "/console", "last-reads")} == {
        "Test Loyalty",
        "Second Loyalty",
    }


TIME = re.compile(r'<time datetime="([^"]+)" title="([^"]+)">([^<]+)</time>')


def _times(html: str, table_id: str) -> list[tuple[str, str, str]]:
    """(datetime attribute, hover title, text shown) of each time in a table."""
    start = html.index(f'<table id="{table_id}">')
    return TIME.findall(html[start : html.index("</table>", start)])


def _zone_note(zone: str, place: str) -> str:
    return (
        f"Times are in {zone}, the time zone of {place}, your first location. "
        "Point at a time to see it in UTC."
    )


def test_times_show_in_the_first_locations_zone_with_utc_on_hover(
    tenant: Tenant, feed: httpx.Client, owner: httpx.Client
) -> None:
    api = Api(feed, tenant)
    for record_id, place, zone in [
        ("loc-1", "Bayside", "Australia/Adelaide"),
        ("loc-2", "Downtown", "America/New_York"),
    ]:
        body = record("locations", record_id, name=place, timezone=zone)
        assert api.put("locations", record_id, body).status_code == 201
    assert _read(feed, tenant) == 200

    page = owner.get("/console/activity").text

    assert text_of(page, "zone-note") == _zone_note("Australia/Adelaide", "Bayside")
    [(machine, hover, shown)] = _times(page, "recent-requests")
    instant = datetime.fromisoformat(machine)
    assert abs(datetime.now(UTC) - instant) < timedelta(minutes=2)
    assert machine == instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert hover == instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    local = instant.astimezone(ZoneInfo("Australia/Adelaide"))
    assert local.tzname() in ("ACDT", "ACST")
    assert shown == f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"

    # The first location closes: the next oldest one's zone is the business's now.
    assert api.delete("locations", "loc-1").status_code == 200
    page = owner.get("/console/apps").text
    assert text_of(page, "zone-note") == _zone_note("America/New_York", "Downtown")
    [since, last_use] = _times(page, "apps")
    for machine, hover, _ in (since, last_use):
        instant = datetime.fromisoformat(machine)
        assert hover == instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    new_york = ZoneInfo("America/New_York")
    assert since[2] == f"{datetime.fromisoformat(since[0]).astimezone(new_york):%Y-%m-%d}"
    local = datetime.fromisoformat(last_use[0]).astimezone(new_york)
    assert last_use[2] == f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


# Shared secret


def test_rotating_shows_the_new_secret_once_and_the_old_one_stops_working(
    db: Engine, tenant: Tenant, feed: httpx.Client, owner: httpx.Client
) -> None:
    assert _read(feed, tenant) == 200
    holders = _rows(owner, "/console/secret", "secret-holders")
    assert [row[0] for row in holders] == ["Test Loyalty"]

    confirm = owner.get("/console/secret/rotate")
    assert confirm.status_code == 200
    assert text_of(confirm.text, "confirm-heading") == "Rotate the shared secret?"
    assert _read(feed, tenant) == 200  # asking changed nothing
    response = owner.post(
        "/console/secret/rotate", data={"csrf_token": csrf_of(confirm.text), "confirm": "yes"}
    )

    assert response.status_code == 303
    assert_security_headers(response)
    shown_once = response.headers["location"]
    assert re.fullmatch(r"/console/secret/new\?flash=\d+", shown_once), shown_once
    assert response.text == ""
    [sealed] = _flashes(db, owner)  # waiting for the next page, and not in plaintext
    assert b"cfs_" not in sealed

    page = owner.get(shown_once)
    assert page.status_code == 200
    assert_security_headers(page)  # no-store: the secret is kept by no cache
    secret = text_of(page.text, "new-secret")
    assert secret.startswith("cfs_") and secret != tenant.business.shared_secret
    assert secret.encode() not in sealed
    assert 'data-copy="#new-secret"' in page.text
    assert page.text.count(secret) == 1
    assert _flashes(db, owner) == []  # shown, and gone

    # A reload neither rotates again nor shows the secret again.
    again = owner.get(shown_once)
    assert again.status_code == 410
    assert secret not in again.text
    assert "This secret was already shown" in again.text
    assert _read(feed, tenant) == 401
    assert _read(feed, tenant, {**tenant.read_headers, "Authorization": f"Bearer {secret}"}) == 200
    for later in PAGES:
        assert secret not in owner.get(later).text, later


def test_rotating_needs_the_confirmation(
    tenant: Tenant, feed: httpx.Client, owner: httpx.Client
) -> None:
    token = csrf_of(owner.get("/console/secret").text)

    response = owner.post("/console/secret/rotate", data={"csrf_token": token})

    assert response.status_code == 303
    assert response.headers["location"] == "/console/secret/rotate"  # asked, not rotated
    assert _read(feed, tenant) == 200


# Connected apps


def _form(browser: httpx.Client, action: str, **fields: str) -> httpx.Response:
    token = csrf_of(browser.get("/console/apps").text)
    return browser.post(action, data={"csrf_token": token, **fields})


def _revoke(browser: httpx.Client, integrator_id: int, via: str) -> httpx.Response:
    """Revoke as the confirmation page's form does."""
    return _form(browser, f"/console/apps/{integrator_id}/revoke", via=via, confirm="yes")


def _notice(browser: httpx.Client, response: httpx.Response) -> str:
    """The banner on the page a form redirected to; loading that page again shows none."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert re.fullmatch(r"/console/apps\?flash=\d+", location), location
    page = browser.get(location)
    assert page.status_code == 200
    assert 'id="apps-notice"' not in browser.get(location).text
    return text_of(page.text, "apps-notice")


def test_revoking_a_shared_secret_app_refuses_it_until_allowed_again(
    db: Engine, tenant: Tenant, feed: httpx.Client, owner: httpx.Client
) -> None:
    bystander = new_integrator(db, "Bystander Rewards")
    bystander_headers = {**tenant.read_headers, "X-Integrator-Key": bystander.key}
    assert _read(feed, tenant) == 200
    assert _read(feed, tenant, bystander_headers) == 200
    integrator = tenant.integrator.id
    rows = {row[0]: row for row in _rows(owner, "/console/apps", "apps")}
    assert rows["Test Loyalty"][1:3] == ["Shared secret", "Everything"]
    connected_on = date.fromisoformat(rows["Test Loyalty"][3])  # a day: when it first read
    assert abs(datetime.now(UTC).date() - connected_on) <= timedelta(days=1)
    assert _near_now(rows["Test Loyalty"][4])
    assert rows["Test Loyalty"][5:] == ["Active", "Revoke Test Loyalty (Shared secret)"]

    response = _revoke(owner, integrator, "shared_secret")

    assert _read(feed, tenant) == 401
    assert _read(feed, tenant, bystander_headers) == 200  # only that app is cut off
    assert _notice(owner, response) == "Test Loyalty can no longer read with the shared secret."
    row = next(r for r in _rows(owner, "/console/apps", "apps") if r[0] == "Test Loyalty")
    assert row[5].startswith("Revoked ") and row[6] == "Allow again Test Loyalty"

    response = _form(owner, f"/console/apps/{integrator}/allow")

    assert _notice(owner, response) == (
        "Test Loyalty can read your data with the shared secret again."
    )
    assert _read(feed, tenant) == 200
    row = next(r for r in _rows(owner, "/console/apps", "apps") if r[0] == "Test Loyalty")
    assert row[5:] == ["Active", "Revoke Test Loyalty (Shared secret)"]


def test_revoking_an_oauth_app_kills_its_token_at_once(
    db: Engine, tenant: Tenant, feed: httpx.Client, console: Server
) -> None:
    granted = connect(feed, db, tenant.business.id, scope="checkins users")
    app = granted.app
    assert _read(feed, tenant, granted.read_headers()) == 200
    with logged_in(console.base_url, granted.admin.email) as owner:
        [row] = _rows(owner, "/console/apps", "apps")
        assert row[:3] == [app.name, "OAuth", "Users Check-ins"]  # in catalogue order
        assert _near_now(row[4])

        assert _notice(owner, _revoke(owner, app.id, "oauth")) == (
            f"{app.name} can no longer read with OAuth "
            "(its access and refresh tokens stop working)."
        )

        assert _read(feed, tenant, granted.read_headers()) == 401
        [row] = _rows(owner, "/console/apps", "apps")
        assert row[5].startswith("Revoked ")
        assert row[6] == "Reconnects when you approve it again from the app."
        # An OAuth app is not let back in from here: it must ask for consent again.
        refused = _form(owner, f"/console/apps/{app.id}/allow")
        assert refused.status_code == 409
        assert "nothing was changed" in refused.text
        assert _read(feed, tenant, granted.read_headers()) == 401


# Activity


def test_activity_lists_the_requests_made_and_counts_them_per_app(
    db: Engine, tenant: Tenant, feed: httpx.Client, owner: httpx.Client
) -> None:
    assert owner.get("/console/activity").text.count("No requests yet") == 2
    second = new_integrator(db, "Second Loyalty")
    second_headers = {**tenant.read_headers, "X-Integrator-Key": second.key}
    reads = [
        feed.get("/v1/checkins", headers=tenant.read_headers),
        feed.get("/v1/users/u-404", headers=tenant.read_headers),
        feed.post("/v1/users/lookup", json={"ids": ["a"]}, headers=tenant.read_headers),
        feed.get("/v1/locations", headers=second_headers),
    ]
    assert [r.status_code for r in reads] == [200, 404, 200, 200]
    feed.get("/v1/checkins", headers={**tenant.read_headers, "Authorization": "Bearer wrong"})

    recent = _rows(owner, "/console/activity", "recent-requests")

    assert [row[1:] for row in recent] == [
        ["Second Loyalty", "GET", "/v1/locations", "200", "Shared secret"],
        ["Test Loyalty", "POST", "/v1/users/lookup", "200", "Shared secret"],
        ["Test Loyalty", "GET", "/v1/users/u-404", "404", "Shared secret"],
        ["Test Loyalty", "GET", "/v1/checkins", "200", "Shared secret"],
    ]
    assert all(_near_now(row[0]) for row in recent)
    assert _rows(owner, "/console/activity", "requests-per-app") == [
        ["Test Loyalty", "3"],
        ["Second Loyalty", "1"],
    ]


# Isolation between businesses


def test_an_admin_sees_and_changes_only_their_own_business(
    db: Engine, tenant: Tenant, feed: httpx.Client, owner: httpx.Client
) -> None:
    other = Tenant(new_tenant(db).business, new_integrator(db, "Other Gym's App"))
    Api(feed, other).seed()
    assert _read(feed, other) == 200
    assert _read(feed, tenant) == 200
    token = csrf_of(owner.get("/console").text)

    for action in ("revoke", "allow"):
        response = owner.post(
            f"/console/apps/{other.integrator.id}/{action}",
            data={"csrf_token": token, "confirm": "yes"},
        )
        assert response.status_code == 404, action
        assert "not connected to your business" in response.text
    assert _read(feed, other) == 200
    for integrator_id in (other.integrator.id, 999999999):
        confirm = owner.get(f"/console/apps/{integrator_id}/revoke?via=shared_secret")
        assert confirm.status_code == 404
        assert "not connected to your business" in confirm.text
        refused = owner.post(
            f"/console/apps/{integrator_id}/revoke", data={"csrf_token": token, "confirm": "yes"}
        )
        assert refused.status_code == 404

    for page in PAGES:
        html = owner.get(page).text
        assert "Other Gym&#39;s App" not in html and "Other Gym's App" not in html, page
    overview = owner.get("/console").text
    assert all(text_of(overview, f"count-{name}") == "0" for name in WRITE_ORDER)
    assert [row[1] for row in _rows(owner, "/console/activity", "recent-requests")] == [
        "Test Loyalty"
    ]
