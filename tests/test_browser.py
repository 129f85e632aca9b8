"""The console and the OAuth flow in a real headless Chromium, on both databases.

A gym owner logs in through the form, approves or denies on the consent page, rotates
the shared secret and revokes apps by clicking; the integrator's side is plain HTTP
(a loopback redirect receiver, the token endpoint, the feed). Every page visited is
saved under test-output/<test>/ for a person to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright
from sqlalchemy import Engine, func, select

from clubfeed import catalogue
from clubfeed.auth import credentials
from clubfeed.storage.schema import connections, oauth_grants
from tests.browserkit import DESKTOP, Receiver, Shots, launch, log_in
from tests.conftest import Server
from tests.consolekit import PASSWORD, new_admin
from tests.factories import Api, Tenant, new_business, new_integrator, record
from tests.oauthkit import Pkce, authorize_params, exchange, new_app, oauth_error, pkce, refresh
from tests.problemkit import assert_problem

GYM = "Northside Barbell"
APP = "Perkville Rewards"
SECRET_APP = "Lift Loyalty"
DAY = re.compile(r"^\s*\d{4}-\d\d-\d\d\s*$")
# The gym's one location is in New York, so its times are shown in New York's zone.
WHEN = re.compile(r"^\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[SD]T\s*$")
UTC_TITLE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")


LOAD_FAILED = "Failed to load resource: the server responded with a status of"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One browser for the module; each test gets its own context (cookies, storage)."""
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def tab(chromium: Browser, console: Server) -> Iterator[Page]:
    """A fresh browser context on the console; fails the test if a page logged an error
    (a script error, or a style or script the Content-Security-Policy blocked)."""
    context = chromium.new_context(
        base_url=console.base_url, viewport=DESKTOP, locale="en-US", timezone_id="UTC"
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # Neither the console nor the receiver has a favicon; the browser's 404 for it is no fault.
        # Nor is a page's own 4xx (a 404 page, the 410 of a secret already shown): the tests
        # check those statuses themselves. A style or script that fails to load still counts.
        url = message.location["url"]
        own_status = url == page.url and message.text.startswith(LOAD_FAILED)
        if message.type == "error" and urlsplit(url).path != "/favicon.ico" and not own_status:
            errors.append(f"{page.url}: {message.text} ({url})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
    yield page
    context.close()
    assert errors == [], "the browser logged errors"


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(request.node.name)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def feed(console: Server) -> Iterator[httpx.Client]:
    """The integrator's (and the point of sale's) HTTP client: no browser involved."""
    with httpx.Client(base_url=console.base_url, timeout=30) as http:
        yield http


@dataclass(frozen=True)
class Gym:
    """A business with check-ins written through the ingest API, and its admin.

    `tenant.integrator` is an app that reads with the shared secret; `checkins` are
    the records as the ingest API stored them, in the order written.
    """

    tenant: Tenant
    admin_email: str
    checkins: list[dict[str, Any]]

    @property
    def secret_headers(self) -> dict[str, str]:
        return self.tenant.read_headers


def _put(api: Api, resource: str, body: dict[str, Any]) -> dict[str, Any]:
    """Write one record; the stored copy must hold every field exactly as written."""
    response = api.put(resource, body["id"], body)
    assert response.status_code == 201, response.text
    stored: dict[str, Any] = response.json()
    assert {name: stored[name] for name in body} == body
    return stored


@pytest.fixture
def gym(db: Engine, feed: httpx.Client) -> Gym:
    api = Api(feed, Tenant(new_business(db, GYM), new_integrator(db, SECRET_APP)))
    downtown = record(
        "locations", "loc-1", name="Downtown", city="Boston", timezone="America/New_York"
    )
    _put(api, "locations", downtown)
    for user in ("usr-1", "usr-2"):
        _put(api, "users", record("users", user))
    checkins = [
        _put(
            api,
            "checkins",
            # Written in the location's own offset (EDT), so it is stored as written.
            record(
                "checkins",
                f"chk-{n}",
                {"locations": "loc-1", "users": user},
                checked_in_at=f"2026-03-14T0{6 + n}:15:00.000123-04:00",
            ),
        )
        for n, user in enumerate(("usr-1", "usr-2", "usr-1"), start=1)
    ]
    return Gym(api.tenant, new_admin(db, api.tenant.business.id).email, checkins)


def _to_consent(tab: Page, shots: Shots, base_url: str, gym: Gym, params: dict[str, str]) -> None:
    """Open the app's authorization request, log in on the way, and check the consent page."""
    query = urlencode(params)
    tab.goto(f"/oauth/authorize?{query}")
    back = quote(f"/oauth/authorize?{query}", safe="/")
    expect(tab).to_have_url(f"{base_url}/console/login?next={back}")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Log in")
    shots.take(tab, "login")
    shots.take_phone(tab, "login")

    log_in(tab, gym.admin_email, PASSWORD)
    expect(tab).to_have_url(f"{base_url}/oauth/authorize?{query}")
    expect(tab.get_by_role("heading", level=1)).to_have_text(f"Let {APP} read {GYM}’s data?")
    checkins = catalogue.get("checkins")
    expect(tab.locator("ul.access li")).to_have_text([f"Check-ins — {checkins.description}"])
    expect(tab.locator("p.who")).to_have_text(
        f"You are signed in as {gym.admin_email}. After you choose, you go back to "
        f"{params['redirect_uri']}."
    )
    shots.take(tab, "consent")
    shots.take_phone(tab, "consent")


def _caught(tab: Page, receiver: Receiver) -> dict[str, str]:
    """The redirect the browser was sent to, as the receiver caught it."""
    expect(tab).to_have_url(re.compile("^" + re.escape(receiver.uri) + r"\?"))
    answer = receiver.only_redirect()
    assert tab.url == f"{receiver.uri}?{urlencode(answer)}"
    expect(tab.get_by_role("heading", level=1)).to_have_text("connected")
    return answer


def _tokens(
    feed: httpx.Client, app: credentials.NewIntegrator, code: str, proof: Pkce
) -> dict[str, Any]:
    """Exchange the code (client_secret_basic, PKCE verifier) for tokens covering check-ins."""
    response = exchange(feed, app, code, proof.verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    tokens: dict[str, Any] = response.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "checkins"
    assert tokens["expires_in"] == 3600
    return tokens


def _approve_in_browser(
    tab: Page,
    shots: Shots,
    base_url: str,
    receiver: Receiver,
    feed: httpx.Client,
    gym: Gym,
    app: credentials.NewIntegrator,
) -> dict[str, Any]:
    """The whole flow: consent in the browser, code at the receiver, tokens over HTTP."""
    proof = pkce()
    params = authorize_params(app, proof, scope="checkins")
    _to_consent(tab, shots, base_url, gym, params)
    tab.get_by_role("button", name="Approve", exact=True).click()
    answer = _caught(tab, receiver)
    assert set(answer) == {"code", "state"}
    assert answer["state"] == params["state"]
    shots.take(tab, "receiver")
    return _tokens(feed, app, answer["code"], proof)


def _token_headers(app: credentials.NewIntegrator, tokens: dict[str, Any]) -> dict[str, str]:
    return {"X-Integrator-Key": app.key, "Authorization": f"Bearer {tokens['access_token']}"}


def test_an_approved_app_reads_exactly_the_checkins_written(
    tab: Page,
    shots: Shots,
    console: Server,
    receiver: Receiver,
    feed: httpx.Client,
    db: Engine,
    gym: Gym,
) -> None:
    app = new_app(db, receiver.uri, name=APP)
    tokens = _approve_in_browser(tab, shots, console.base_url, receiver, feed, gym, app)

    response = feed.get("/v1/checkins", headers=_token_headers(app, tokens))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"] == gym.checkins
    assert body["next_cursor"] is None

    tab.goto("/console")
    expect(tab.locator("#business-name")).to_have_text(GYM)
    expect(tab.locator("#count-checkins")).to_have_text("3")
    expect(tab.locator("#count-users")).to_have_text("2")
    expect(tab.locator("#locations tbody tr td")).to_have_text(
        ["Downtown", "Boston", "America/New_York"]
    )
    reads = tab.locator("#last-reads tbody tr")
    expect(reads).to_have_count(1)
    expect(reads.locator("th, td")).to_have_text([APP, WHEN, "OAuth", "Active"])
    shots.take(tab, "overview")

    tab.goto("/console/activity")
    expect(tab.locator("#requests-per-app tbody tr").locator("th, td")).to_have_text([APP, "1"])
    recent = tab.locator("#recent-requests tbody tr")
    expect(recent).to_have_count(1)
    expect(recent.locator("td")).to_have_text([WHEN, APP, "GET", "/v1/checkins", "200", "OAuth"])
    shots.take(tab, "activity")
    shots.take_phone(tab, "activity")


def test_a_denied_app_gets_access_denied_and_no_connection(
    tab: Page,
    shots: Shots,
    console: Server,
    receiver: Receiver,
    db: Engine,
    gym: Gym,
) -> None:
    app = new_app(db, receiver.uri, name=APP)
    params = authorize_params(app, pkce(), scope="checkins")
    _to_consent(tab, shots, console.base_url, gym, params)
    tab.get_by_role("button", name="Deny", exact=True).click()
    answer = _caught(tab, receiver)
    assert answer == {
        "error": "access_denied",
        "error_description": "The resource owner or authorization server denied the request",
        "state": params["state"],
    }
    shots.take(tab, "receiver")

    tab.goto("/console/apps")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Connected apps")
    expect(tab.locator("#apps")).to_have_count(0)
    expect(tab.get_by_text(APP)).to_have_count(0)
    expect(tab.locator("p.empty")).to_contain_text("No app is connected yet.")
    shots.take(tab, "connected-apps")

    business_id = gym.tenant.business.id
    with db.connect() as conn:
        for table in (oauth_grants, connections):
            count = select(func.count()).where(
                table.c.business_id == business_id, table.c.integrator_id == app.id
            )
            assert conn.execute(count).scalar_one() == 0, table.name


def test_rotating_the_secret_on_the_page_refuses_the_old_one(
    tab: Page, shots: Shots, console: Server, feed: httpx.Client, gym: Gym
) -> None:
    old = gym.secret_headers
    assert feed.get("/v1/checkins", headers=old).status_code == 200

    tab.goto("/console/secret")
    expect(tab).to_have_url(f"{console.base_url}/console/login?next=/console/secret")
    shots.take(tab, "login")
    log_in(tab, gym.admin_email, PASSWORD)
    expect(tab).to_have_url(f"{console.base_url}/console/secret")
    expect(tab.locator("#secret-holders tbody tr").locator("th, td")).to_have_text(
        [SECRET_APP, DAY, WHEN, "Active"]
    )
    expect(tab.locator("p.warning")).to_contain_text(f"Apps that read with it ({SECRET_APP})")
    shots.take(tab, "shared-secret-before")

    first_read = tab.locator("#secret-holders tbody tr time").first
    expect(first_read).to_have_attribute("title", UTC_TITLE)

    # Rotating asks first, on a page of its own; Cancel changes nothing.
    tab.get_by_role("link", name="Rotate shared secret…", exact=True).click()
    expect(tab).to_have_url(f"{console.base_url}/console/secret/rotate")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Rotate the shared secret?")
    expect(tab.locator("#consequences li").first).to_have_text(
        f"{SECRET_APP} can no longer read with the shared secret until you paste the new secret "
        "into their settings; access granted with OAuth is unaffected."
    )
    shots.take(tab, "rotate-confirm")
    shots.take_phone(tab, "rotate-confirm")
    tab.get_by_role("link", name="Cancel", exact=True).click()
    expect(tab).to_have_url(f"{console.base_url}/console/secret")
    assert feed.get("/v1/checkins", headers=old).status_code == 200

    tab.get_by_role("link", name="Rotate shared secret…", exact=True).click()
    tab.get_by_role("button", name="Rotate shared secret", exact=True).click()
    expect(tab).to_have_url(re.compile(re.escape(f"{console.base_url}/console/secret/new?flash=")))
    expect(tab.get_by_role("heading", level=1)).to_have_text("Your new shared secret")
    new_secret = tab.locator("#new-secret").inner_text().strip()
    assert re.fullmatch(r"cfs_[A-Za-z0-9_-]{32,}", new_secret), new_secret
    assert new_secret != gym.tenant.business.shared_secret
    shots.take(tab, "shared-secret-after")
    shots.take_phone(tab, "shared-secret-after")

    assert_problem(feed.get("/v1/checkins", headers=old), 401, "unauthenticated")
    new = {**old, "Authorization": f"Bearer {new_secret}"}
    response = feed.get("/v1/checkins", headers=new)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == gym.checkins

    # A reload asks the browser for the page again, not for another rotation, and the
    # secret is not shown twice; the one shown still works.
    tab.reload()
    expect(tab.get_by_role("heading", level=1)).to_have_text("This secret was already shown")
    expect(tab.locator("#new-secret")).to_have_count(0)
    assert new_secret not in tab.content()
    shots.take(tab, "shared-secret-reloaded")
    assert feed.get("/v1/checkins", headers=new).status_code == 200

    tab.get_by_role("link", name="Back to the shared secret", exact=True).click()
    expect(tab).to_have_url(f"{console.base_url}/console/secret")
    expect(tab.locator("#new-secret")).to_have_count(0)
    assert new_secret not in tab.content()
    shots.take(tab, "shared-secret-done")


def test_revoking_apps_on_the_page_refuses_their_reads(
    tab: Page,
    shots: Shots,
    console: Server,
    receiver: Receiver,
    feed: httpx.Client,
    db: Engine,
    gym: Gym,
) -> None:
    app = new_app(db, receiver.uri, name=APP)
    tokens = _approve_in_browser(tab, shots, console.base_url, receiver, feed, gym, app)
    by_token = _token_headers(app, tokens)
    assert feed.get("/v1/checkins", headers=by_token).status_code == 200
    assert feed.get("/v1/checkins", headers=gym.secret_headers).status_code == 200
    reader = gym.tenant.integrator

    tab.goto("/console/apps")
    oauth_row = tab.locator(f"#app-{app.id}-oauth")
    secret_row = tab.locator(f"#app-{reader.id}-shared_secret")
    expect(tab.locator("#apps tbody tr")).to_have_count(2)
    expect(oauth_row.locator("th, td")).to_have_text(
        [APP, "OAuth", "Check-ins", DAY, WHEN, "Active", "Revoke " + APP + " (OAuth)"]
    )
    expect(secret_row.locator("th, td")).to_have_text(
        [
            SECRET_APP,
            "Shared secret",
            "Everything",
            DAY,
            WHEN,
            "Active",
            "Revoke " + SECRET_APP + " (Shared secret)",
        ]
    )
    shots.take(tab, "connected-apps-before")
    shots.take_phone(tab, "connected-apps-before")

    # Revoke asks first, saying what stops and what does not.
    tab.get_by_role("link", name=f"Revoke {APP} (OAuth)", exact=True).click()
    expect(tab).to_have_url(f"{console.base_url}/console/apps/{app.id}/revoke?via=oauth")
    expect(tab.get_by_role("heading", level=1)).to_have_text(f"Revoke {APP}’s OAuth access?")
    oauth_gone = (
        f"{APP} can no longer read with OAuth (its access and refresh tokens stop working)."
    )
    expect(tab.locator("#consequences li").first).to_have_text(oauth_gone)
    shots.take(tab, "revoke-confirm")
    shots.take_phone(tab, "revoke-confirm")
    assert feed.get("/v1/checkins", headers=by_token).status_code == 200
    tab.get_by_role("button", name="Revoke", exact=True).click()
    expect(tab).to_have_url(re.compile(re.escape(f"{console.base_url}/console/apps?flash=")))
    expect(tab.locator("#apps-notice")).to_have_text(oauth_gone)
    expect(oauth_row.locator("[data-label=Status]")).to_contain_text("Revoked")
    expect(oauth_row.get_by_role("link", name=re.compile("^Revoke"))).to_have_count(0)
    expect(oauth_row).to_contain_text("Reconnects when you approve it again from the app.")
    shots.take(tab, "connected-apps-after-revoke")

    assert_problem(feed.get("/v1/checkins", headers=by_token), 401, "unauthenticated")
    oauth_error(refresh(feed, app, tokens["refresh_token"]), 400, "invalid_grant")
    assert feed.get("/v1/checkins", headers=gym.secret_headers).status_code == 200

    tab.get_by_role("link", name=f"Revoke {SECRET_APP} (Shared secret)", exact=True).click()
    expect(tab.locator("#consequences li").first).to_have_text(
        f"{SECRET_APP} can no longer read with the shared secret."
    )
    tab.get_by_role("button", name="Revoke", exact=True).click()
    expect(tab.locator("#apps-notice")).to_have_text(
        f"{SECRET_APP} can no longer read with the shared secret."
    )
    # The banner was for that one page: a reload shows the list without it, revoking nothing.
    tab.reload()
    expect(tab.locator("#apps-notice")).to_have_count(0)
    expect(secret_row.locator("[data-label=Status]")).to_contain_text("Revoked")
    shots.take(tab, "connected-apps-secret-revoked")
    assert_problem(feed.get("/v1/checkins", headers=gym.secret_headers), 401, "unauthenticated")

    tab.get_by_role("button", name=f"Allow again {SECRET_APP}", exact=True).click()
    expect(tab.locator("#apps-notice")).to_have_text(
        f"{SECRET_APP} can read your data with the shared secret again."
    )
    expect(secret_row.locator("[data-label=Status]")).to_have_text("Active")
    shots.take(tab, "connected-apps-allowed-again")
    response = feed.get("/v1/checkins", headers=gym.secret_headers)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == gym.checkins
    assert_problem(feed.get("/v1/checkins", headers=by_token), 401, "unauthenticated")


def test_an_unknown_console_page_is_a_page_with_a_way_home(
    tab: Page, shots: Shots, console: Server, gym: Gym
) -> None:
    response = tab.goto("/console/no-such-page")
    assert response is not None and response.status == 404
    assert response.headers["x-frame-options"] == "DENY"
    expect(tab.get_by_role("heading", level=1)).to_have_text("Page not found")
    shots.take(tab, "not-found")
    shots.take_phone(tab, "not-found")

    tab.get_by_role("link", name="Go to the console", exact=True).click()
    expect(tab).to_have_url(f"{console.base_url}/console/login?next=/console")
    log_in(tab, gym.admin_email, PASSWORD)
    expect(tab.locator("#zone-note")).to_have_text(
        "Times are in America/New_York, the time zone of Downtown, your first location. "
        "Point at a time to see it in UTC."
    )
