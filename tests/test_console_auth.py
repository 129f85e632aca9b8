"""Console login, logout, sessions, redirects, rate limits, security headers and CSRF, over real HTTP."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Engine

from clubfeed.auth import sessions
from tests.conftest import Server
from tests.consolekit import (
    PAGES,
    PASSWORD,
    assert_security_headers,
    console_settings,
    csrf_of,
    log_in,
    logged_in,
    new_admin,
    table,
)
from tests.factories import Tenant


@pytest.fixture
def browser(console: Server) -> Iterator[httpx.Client]:
    """A client with its own cookie jar that, like a test of redirects must, does not follow them."""
    with httpx.Client(base_url=console.base_url, timeout=60, follow_redirects=False) as http:
        yield http


def login_redirect(page: str) -> str:
    return f"/console/login?next={quote(page, safe='/')}"


# Logging in


def test_login_starts_a_session_and_lands_on_the_overview(
    db: Engine, tenant: Tenant, browser: httpx.Client
) -> None:
    admin = new_admin(db, tenant.business.id)

    response = log_in(browser, admin.email.upper())  # emails are case-insensitive

    assert response.status_code == 303
    assert response.headers["location"] == "/console"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(f"{sessions.COOKIE}=")
    )
    assert {"httponly", "samesite=lax", "path=/"} <= {
        part.strip().lower() for part in cookie.split(";")
    }
    overview = browser.get("/console")
    assert overview.status_code == 200
    assert admin.email in overview.text
    assert f'<code id="business-id">{tenant.business.id}</code>' in overview.text


@pytest.mark.parametrize("wrong", ["password", "email"])
def test_wrong_credentials_answer_401_with_the_form_again(
    db: Engine, tenant: Tenant, browser: httpx.Client, wrong: str
) -> None:
    admin = new_admin(db, tenant.business.id)
    email = "nobody-here@gym.example" if wrong == "email" else admin.email
    password = "not the password at all" if wrong == "password" else PASSWORD

    response = log_in(browser, email, password)

    assert response.status_code == 401
    # One message for both, so the form does not tell which emails have accounts.
    assert "That email and password don&#39;t match an admin account." in response.text
    assert f'value="{email}"' in response.text  # the email is kept for the next try
    assert sessions.COOKIE not in browser.cookies
    assert browser.get("/console").status_code == 303


def test_the_right_password_after_a_wrong_one_logs_in(
    db: Engine, tenant: Tenant, browser: httpx.Client
) -> None:
    admin = new_admin(db, tenant.business.id)
    assert log_in(browser, admin.email, "wrong password, again").status_code == 401
    assert log_in(browser, admin.email).status_code == 303
    assert browser.get("/console").status_code == 200


@pytest.mark.parametrize(
    ("requested", "lands_on"),
    [
        ("/console/apps", "/console/apps"),
        ("/console/activity?x=1", "/console/activity?x=1"),
        ("/oauth/authorize?client_id=c&state=s%20t", "/oauth/authorize?client_id=c&state=s%20t"),
        ("https://evil.example/console", "/console"),
        ("//evil.example/console", "/console"),
        ("/\\evil.example", "/console"),
        ("/\t/evil.example", "/console"),
        ("javascript:alert(1)", "/console"),
        ("console/apps", "/console"),
        ("", "/console"),
    ],
)
def test_next_is_followed_only_to_a_path_on_this_site(
    db: Engine, tenant: Tenant, browser: httpx.Client, requested: str, lands_on: str
) -> None:
    admin = new_admin(db, tenant.business.id)

    form = browser.get("/console/login", params={"next": requested})
    assert f'name="next" value="{lands_on.replace("&", "&amp;")}"' in form.text
    # The form's hidden field is checked again when posted, as an attacker may post anything.
    response = browser.post(
        "/console/login",
        data={
            "email": admin.email,
            "password": PASSWORD,
            "csrf_token": csrf_of(form.text),
            "next": requested,
        },
    )

    assert response.status_code == 303
    assert response.headers["location"] == lands_on


def test_the_login_page_sends_a_logged_in_admin_on_to_next(
    db: Engine, tenant: Tenant, console: Server
) -> None:
    admin = new_admin(db, tenant.business.id)
    with logged_in(console.base_url, admin.email) as browser:
        assert browser.get("/console/login").headers["location"] == "/console"
        again = browser.get("/console/login", params={"next": "/console/secret"})
        assert again.status_code == 303
        assert again.headers["location"] == "/console/secret"
        assert browser.get("/console/login", params={"next": "//evil.example"}).headers[
            "location"
        ] == ("/console")


# Sessions


@pytest.mark.parametrize(
    "page",
    [*PAGES, "/console/apps?flash=1", "/console/secret/new?flash=1", "/console/apps/1/revoke"],
)
def test_every_page_sends_a_visitor_without_a_session_to_log_in_and_back(
    browser: httpx.Client, page: str
) -> None:
    anonymous = browser.get(page)
    browser.cookies.set(sessions.COOKIE, "not-a-session")
    forged = browser.get(page)

    for response in (anonymous, forged):
        assert response.status_code == 303
        assert response.headers["location"] == login_redirect(page)
        assert_security_headers(response)


def test_forms_without_a_session_change_nothing_and_lead_to_login(
    tenant: Tenant, browser: httpx.Client
) -> None:
    integrator = tenant.integrator.id
    for action, page in [
        ("/console/secret/rotate", "/console/secret"),
        (f"/console/apps/{integrator}/revoke", "/console/apps"),
        (f"/console/apps/{integrator}/allow", "/console/apps"),
        ("/console/logout", "/console"),
    ]:
        response = browser.post(action, data={"csrf_token": "x", "confirm": "yes"})
        assert response.status_code == 303, action
        assert response.headers["location"] == login_redirect(page)

    assert browser.get("/v1/checkins", headers=tenant.read_headers).status_code == 200


def test_logout_ends_the_session_everywhere(
    db: Engine, tenant: Tenant, console: Server, browser: httpx.Client
) -> None:
    admin = new_admin(db, tenant.business.id)
    assert log_in(browser, admin.email).status_code == 303
    cookie = browser.cookies[sessions.COOKIE]
    with httpx.Client(base_url=console.base_url, follow_redirects=False) as elsewhere:
        elsewhere.cookies.set(sessions.COOKIE, cookie)
        assert elsewhere.get("/console").status_code == 200

        response = browser.post(
            "/console/logout", data={"csrf_token": csrf_of(browser.get("/console").text)}
        )

        assert response.status_code == 303
        assert response.headers["location"] == "/console/login"
        assert_security_headers(response)
        assert sessions.COOKIE not in browser.cookies
        # The old cookie value is dead on the server, not merely dropped by this browser.
        assert elsewhere.get("/console").headers["location"] == login_redirect("/console")


def test_sessions_are_separate(db: Engine, tenant: Tenant, console: Server) -> None:
    admin = new_admin(db, tenant.business.id)
    with (
        logged_in(console.base_url, admin.email) as first,
        logged_in(console.base_url, admin.email) as second,
    ):
        assert first.cookies[sessions.COOKIE] != second.cookies[sessions.COOKIE]
        first_token = csrf_of(first.get("/console").text)
        assert first_token != csrf_of(second.get("/console").text)
        assert first.post("/console/logout", data={"csrf_token": first_token}).status_code == 303
        assert second.get("/console").status_code == 200


# Rate limits


@pytest.fixture(scope="module")
def strict_console(db: Engine, db_url: str) -> Iterator[Server]:
    """A server that allows three login attempts a minute per client address, and three
    failed ones per email."""
    with Server(console_settings(db_url, login_rate_limit="3/minute")) as running:
        yield running


def _attempt(client: httpx.Client, email: str, password: str, ip: str) -> httpx.Response:
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 (a local proxy), which lets one test
    # client stand for many addresses. No cookies are kept, as from a new browser each time.
    client.cookies.clear()
    form = client.get("/console/login")
    return client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(form.text)},
        headers={"X-Forwarded-For": ip},
    )


def _assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert "Too many login attempts" in response.text
    assert_security_headers(response)
    assert sessions.COOKIE not in response.cookies


def test_login_is_rate_limited_per_client_address(
    db: Engine, tenant: Tenant, strict_console: Server
) -> None:
    admin = new_admin(db, tenant.business.id)
    with httpx.Client(base_url=strict_console.base_url, follow_redirects=False) as client:
        for n in range(2):
            assert (
                _attempt(client, f"guess{n}@gym.example", "guessing", "203.0.113.7").status_code
                == 401
            )
        # Every attempt counts against the address, a right one too.
        assert _attempt(client, admin.email, PASSWORD, "203.0.113.7").status_code == 303

        # Over the limit even the right password is not checked; another address may try.
        _assert_limited(_attempt(client, admin.email, PASSWORD, "203.0.113.7"))
        assert _attempt(client, admin.email, PASSWORD, "203.0.113.8").status_code == 303


def test_failed_logins_from_many_addresses_add_up_per_email(
    db: Engine, tenant: Tenant, strict_console: Server
) -> None:
    admin = new_admin(db, tenant.business.id)
    with httpx.Client(base_url=strict_console.base_url, follow_redirects=False) as client:
        for n in range(3):
            assert _attempt(client, admin.email, "guessing", f"198.51.100.{n}").status_code == 401

        _assert_limited(_attempt(client, admin.email.upper(), PASSWORD, "198.51.100.99"))


def test_right_passwords_do_not_use_up_the_emails_allowance(
    db: Engine, tenant: Tenant, strict_console: Server
) -> None:
    admin = new_admin(db, tenant.business.id)
    with httpx.Client(base_url=strict_console.base_url, follow_redirects=False) as client:
        for n in range(5):
            assert _attempt(client, admin.email, PASSWORD, f"192.0.2.{10 + n}").status_code == 303

        for n in range(3):
            assert _attempt(client, admin.email, "guessing", f"192.0.2.{20 + n}").status_code == 401
        _assert_limited(_attempt(client, admin.email, PASSWORD, "192.0.2.30"))


def test_an_ipv6_client_cannot_take_a_fresh_login_limit_from_each_address_of_its_64(
    db: Engine, tenant: Tenant, strict_console: Server
) -> None:
    """Counted by /64, as /v1's limits are: one host may hold a whole /64 of addresses."""
    with httpx.Client(base_url=strict_console.base_url, follow_redirects=False) as client:
        for n in range(3):
            response = _attempt(client, f"g{n}@gym.example", "guessing", f"2001:db8:7:7::{n + 1}")
            assert response.status_code == 401
        _assert_limited(_attempt(client, "g9@gym.example", "guessing", "2001:db8:7:7::99"))
        assert _attempt(client, "g9@gym.example", "guessing", "2001:db8:7:8::1").status_code == 401


def test_an_attacker_below_the_email_limit_cannot_lock_the_owner_out(
    db: Engine, tenant: Tenant, strict_console: Server
) -> None:
    admin = new_admin(db, tenant.business.id)
    attacker = "192.0.2.66"
    with httpx.Client(base_url=strict_console.base_url, follow_redirects=False) as client:
        for _ in range(2):
            assert _attempt(client, admin.email, "guessing", attacker).status_code == 401
        other = f"someone-{uuid.uuid4().hex[:8]}@gym.example"
        assert _attempt(client, other, "guessing", attacker).status_code == 401
        # The attacker's address is spent: what it sends now is refused unchecked, and
        # costs the owner's email nothing.
        for _ in range(5):
            _assert_limited(_attempt(client, admin.email, "guessing", attacker))

        assert _attempt(client, admin.email, PASSWORD, "192.0.2.67").status_code == 303


# Security headers


def test_security_headers_on_login_and_console_pages(
    db: Engine, tenant: Tenant, browser: httpx.Client
) -> None:
    admin = new_admin(db, tenant.business.id)
    assert_security_headers(browser.get("/console/login"))
    assert_security_headers(log_in(browser, admin.email, "wrong password here"))
    response = log_in(browser, admin.email)
    assert_security_headers(response)

    for page in PAGES:
        response = browser.get(page)
        assert response.status_code == 200, page
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert_security_headers(response)
    assert_security_headers(browser.post("/console/secret/rotate", data={"csrf_token": "wrong"}))


def test_pages_load_nothing_from_elsewhere_and_run_no_inline_script(
    db: Engine, tenant: Tenant, console: Server
) -> None:
    admin = new_admin(db, tenant.business.id)
    with (
        logged_in(console.base_url, admin.email) as browser,
        httpx.Client(base_url=console.base_url) as anonymous,
    ):
        for html in [anonymous.get("/console/login").text, *(browser.get(p).text for p in PAGES)]:
            assert "<h1" in html
            assert "//" not in html  # no absolute or scheme-relative URL
            assert "<script>" not in html and not re.search(r"\son[a-z]+=", html)
            assert '<script src="/console/static/console.js" defer></script>' in html
        for asset in ("/console/static/console.css", "/console/static/console.js"):
            body = browser.get(asset)
            assert body.status_code == 200
            assert "url(" not in body.text and "@import" not in body.text


# CSRF


def test_login_form_needs_its_csrf_cookie_and_token(
    db: Engine, tenant: Tenant, browser: httpx.Client
) -> None:
    admin = new_admin(db, tenant.business.id)
    fields = {"email": admin.email, "password": PASSWORD}

    no_cookie = browser.post("/console/login", data={**fields, "csrf_token": "anything"})
    token = csrf_of(browser.get("/console/login").text)  # sets the cookie
    no_token = browser.post("/console/login", data=fields)
    wrong_token = browser.post("/console/login", data={**fields, "csrf_token": token + "x"})

    for response in (no_cookie, no_token, wrong_token):
        assert response.status_code == 403
        assert "This login form had expired" in response.text
        assert sessions.COOKIE not in browser.cookies
    assert browser.post("/console/login", data={**fields, "csrf_token": token}).status_code == 303


def _csrf_variants(own: str, others: str) -> list[tuple[str, dict[str, str]]]:
    return [
        ("missing", {}),
        ("empty", {"csrf_token": ""}),
        ("wrong", {"csrf_token": own[:-2] + ("aa" if not own.endswith("aa") else "bb")}),
        ("another session's", {"csrf_token": others}),
    ]


def test_console_forms_without_this_sessions_csrf_token_are_refused_and_change_nothing(
    db: Engine, tenant: Tenant, console: Server
) -> None:
    admin = new_admin(db, tenant.business.id)
    with (
        httpx.Client(base_url=console.base_url) as feed,
        logged_in(console.base_url, admin.email) as browser,
        logged_in(console.base_url, admin.email) as other,
    ):
        assert feed.get("/v1/checkins", headers=tenant.read_headers).status_code == 200
        own = csrf_of(browser.get("/console").text)
        others = csrf_of(other.get("/console").text)
        assert browser.get("/console/apps").status_code == 200  # records the connection
        integrator = tenant.integrator.id
        for action in (
            "/console/secret/rotate",
            f"/console/apps/{integrator}/revoke",
            "/console/logout",
        ):
            for variant, fields in _csrf_variants(own, others):
                response = browser.post(action, data={**fields, "confirm": "yes"})
                assert response.status_code == 403, (action, variant)
                assert "nothing was changed" in response.text
                assert_security_headers(response)

        # The secret was not rotated, the app not revoked, the session not ended.
        assert feed.get("/v1/checkins", headers=tenant.read_headers).status_code == 200
        assert browser.get("/console").status_code == 200
        apps = table(browser.get("/console/apps").text, "apps")
        assert apps[1][5] == "Active"

        # With a revoked app, "Allow again" is just as guarded.
        assert (
            browser.post(
                f"/console/apps/{integrator}/revoke", data={"csrf_token": own, "confirm": "yes"}
            ).status_code
            == 303
        )
        for variant, fields in _csrf_variants(own, others):
            response = browser.post(f"/console/apps/{integrator}/allow", data=fields)
            assert response.status_code == 403, variant
        assert feed.get("/v1/checkins", headers=tenant.read_headers).status_code == 401


# Unknown console paths


@pytest.mark.parametrize(
    "path",
    [
        "/console/nope",
        "/console/apps/abc/revoke",
        "/console/secret/rotate/now",
        "/console/static/nope.css",
        "/console/static/console.css/x",
    ],
)
def test_unknown_console_paths_answer_an_html_404_page(
    db: Engine, tenant: Tenant, console: Server, browser: httpx.Client, path: str
) -> None:
    with logged_in(console.base_url, new_admin(db, tenant.business.id).email) as owner:
        for client in (browser, owner):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            assert_security_headers(response)
            html = response.text
            assert "<h1>Page not found</h1>" in html
            assert '<a class="button secondary" href="/console">Go to the console</a>' in html
            assert '<link rel="stylesheet" href="/console/static/console.css">' in html


def test_a_wrong_method_on_a_console_page_answers_an_html_405(browser: httpx.Client) -> None:
    response = browser.get("/console/logout")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert_security_headers(response)
    assert "<h1>This page cannot do that</h1>" in response.text


@pytest.mark.parametrize("path", ["/consoles", "/v1/nope", "/nope", "/oauth/nope"])
def test_outside_the_console_a_404_stays_problem_json(browser: httpx.Client, path: str) -> None:
    response = browser.get(path)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/not-found"
