"""Console forms as Post/Redirect/Get: the one-time flash (on any process, for its own session
only), the confirmation step before a revoke, and banners that name the channel acted on."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from clubfeed.auth import sessions
from tests.conftest import Server
from tests.consolekit import console_settings, csrf_of, logged_in, new_admin, text_of
from tests.factories import Tenant
from tests.oauthkit import Connected, connect


@pytest.fixture(scope="module")
def elsewhere(db: Engine, db_url: str) -> Iterator[Server]:
    """A second API process on the same database: it shares nothing else with `console`.

    Its access log propagates (no log config of uvicorn's own), so a test can read it.
    """
    with Server(console_settings(db_url), log_config=None, log_level="info") as running:
        yield running


def _rotate(browser: httpx.Client) -> str:
    """Rotate as the confirmation page's form does; the URL the 303 leads to."""
    token = csrf_of(browser.get("/console/secret/rotate").text)
    response = browser.post("/console/secret/rotate", data={"csrf_token": token, "confirm": "yes"})
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    return location


def _status(client: httpx.Client, headers: dict[str, str]) -> int:
    return client.get("/v1/checkins", headers=headers).status_code


def test_the_new_secret_shows_once_whichever_process_serves_the_page_and_is_never_logged(
    db: Engine,
    tenant: Tenant,
    console: Server,
    elsewhere: Server,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    with (
        logged_in(console.base_url, new_admin(db, tenant.business.id).email) as owner,
        httpx.Client(base_url=elsewhere.base_url, follow_redirects=False) as other_process,
    ):
        other_process.cookies.set(sessions.COOKIE, owner.cookies[sessions.COOKIE])
        shown_once = _rotate(other_process)  # one process rotates,

        page = owner.get(shown_once)  # another shows the secret,
        assert page.status_code == 200
        secret = text_of(page.text, "new-secret")

        for again in (other_process.get(shown_once), owner.get(shown_once)):  # and once only
            assert again.status_code == 410
            assert secret not in again.text
        reader = {**tenant.read_headers, "Authorization": f"Bearer {secret}"}
        assert _status(owner, reader) == 200  # the reloads rotated nothing

    logged = caplog.text
    assert '"POST /console/secret/rotate HTTP/1.1" 303' in logged
    assert f'"GET {shown_once} HTTP/1.1" 410' in logged
    assert secret not in logged


def test_a_flash_is_shown_only_to_the_session_it_was_made_for(
    db: Engine, tenant: Tenant, console: Server
) -> None:
    email = new_admin(db, tenant.business.id).email
    with logged_in(console.base_url, email) as owner, logged_in(console.base_url, email) as other:
        shown_once = _rotate(owner)

        stolen = other.get(shown_once)  # the same admin's other session, say a shared link
        assert stolen.status_code == 410
        assert 'id="new-secret"' not in stolen.text

        page = owner.get(shown_once)  # the other session's try used nothing up
        assert page.status_code == 200
        assert text_of(page.text, "new-secret").startswith("cfs_")


@pytest.mark.parametrize("flash", ["abc", "-1", "0", "١", "9" * 30, ""])
def test_a_page_with_a_flash_that_is_none_of_ours_shows_no_banner(
    db: Engine, tenant: Tenant, console: Server, flash: str
) -> None:
    with logged_in(console.base_url, new_admin(db, tenant.business.id).email) as owner:
        page = owner.get("/console/apps", params={"flash": flash})
        assert page.status_code == 200
        assert 'id="apps-notice"' not in page.text
        assert owner.get("/console/secret/new", params={"flash": flash}).status_code == 410


def _consequences(html: str) -> list[str]:
    found = re.search(r'<ul class="consequences" id="consequences">(.*?)</ul>', html, re.S)
    assert found, "no consequences on the page"
    return [" ".join(item.split()) for item in re.findall(r"<li>(.*?)</li>", found.group(1))]


def _ask_then_revoke(
    owner: httpx.Client, integrator_id: int, via: str
) -> tuple[httpx.Response, str]:
    """Open the confirmation page, then press its Revoke; (that page, the banner after)."""
    confirm = owner.get(f"/console/apps/{integrator_id}/revoke", params={"via": via})
    assert confirm.status_code == 200, confirm.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', confirm.text))
    assert fields == {"csrf_token": csrf_of(confirm.text), "confirm": "yes", "via": via}
    done = owner.post(f"/console/apps/{integrator_id}/revoke", data=fields)
    assert done.status_code == 303
    assert re.fullmatch(r"/console/apps\?flash=\d+", done.headers["location"])
    banner = text_of(owner.get(done.headers["location"]).text, "apps-notice")
    return confirm, banner


def _two_channels(
    feed: httpx.Client, db: Engine, tenant: Tenant
) -> tuple[Connected, dict[str, str]]:
    """An app connected by OAuth, and the headers with which it reads by the shared secret."""
    granted = connect(feed, db, tenant.business.id, scope="checkins")
    by_secret = {
        "X-Integrator-Key": granted.app.key,
        "Authorization": tenant.read_headers["Authorization"],
    }
    return granted, by_secret


def test_revoking_one_channel_asks_first_and_names_the_channel_in_the_banner(
    db: Engine, tenant: Tenant, console: Server
) -> None:
    with httpx.Client(base_url=console.base_url, timeout=30) as feed:
        granted, by_secret = _two_channels(feed, db, tenant)
        app = granted.app
        assert _status(feed, granted.read_headers()) == 200
        assert _status(feed, by_secret) == 200  # the same app, through its second channel
        with logged_in(console.base_url, granted.admin.email) as owner:
            # A form without the confirmation only leads to the question; nothing changes.
            token = csrf_of(owner.get("/console/apps").text)
            unasked = owner.post(
                f"/console/apps/{app.id}/revoke", data={"csrf_token": token, "via": "oauth"}
            )
            assert unasked.status_code == 303
            assert unasked.headers["location"] == f"/console/apps/{app.id}/revoke?via=oauth"
            assert _status(feed, granted.read_headers()) == 200

            confirm, banner = _ask_then_revoke(owner, app.id, "oauth")
            assert text_of(confirm.text, "confirm-heading") == f"Revoke {app.name}’s OAuth access?"
            said = (
                f"{app.name} can no longer read with OAuth (its access and refresh tokens stop "
                "working); its shared-secret access is unaffected."
            )
            assert _consequences(confirm.text) == [
                said,
                "To let it back in with OAuth, approve it again from the app itself.",
            ]
            assert banner == said
            assert _status(feed, granted.read_headers()) == 401
            assert _status(feed, by_secret) == 200

            confirm, banner = _ask_then_revoke(owner, app.id, "shared_secret")
            assert text_of(confirm.text, "confirm-heading") == (
                f"Revoke {app.name}’s shared-secret access?"
            )
            said = f"{app.name} can no longer read with the shared secret."
            assert _consequences(confirm.text)[0] == said
            assert banner == said
            assert _status(feed, by_secret) == 401


def test_the_shared_secret_banner_says_oauth_access_is_unaffected(
    db: Engine, tenant: Tenant, console: Server
) -> None:
    with httpx.Client(base_url=console.base_url, timeout=30) as feed:
        granted, by_secret = _two_channels(feed, db, tenant)
        app = granted.app
        assert _status(feed, by_secret) == 200
        with logged_in(console.base_url, granted.admin.email) as owner:
            _, banner = _ask_then_revoke(owner, app.id, "shared_secret")
            assert banner == (
                f"{app.name} can no longer read with the shared secret; "
                "its OAuth access is unaffected."
            )
            assert _status(feed, by_secret) == 401
            assert _status(feed, granted.read_headers()) == 200


def test_the_rotation_page_says_who_is_cut_off_and_what_is_not(
    db: Engine, tenant: Tenant, console: Server
) -> None:
    with (
        httpx.Client(base_url=console.base_url) as feed,
        logged_in(console.base_url, new_admin(db, tenant.business.id).email) as owner,
    ):
        assert _status(feed, tenant.read_headers) == 200
        confirm = owner.get("/console/secret/rotate")
        assert _consequences(confirm.text) == [
            f"{tenant.integrator.name} can no longer read with the shared secret until you paste "
            "the new secret into their settings; access granted with OAuth is unaffected.",
            "The current secret stops working at once, and the new one is shown only once.",
        ]
        assert '<form method="post" action="/console/secret/rotate">' in confirm.text
        assert '<a class="button secondary" href="/console/secret">Cancel</a>' in confirm.text
        assert _status(feed, tenant.read_headers) == 200
