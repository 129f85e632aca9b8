"""`clubfeed admin`, in-process, with the passwords it prints tried on a real console server.

Without a terminal the commands make up a password and print it; the terminal
prompts are tested with a pseudo-terminal in tests/test_console_cli.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from tests.clikit import assert_clean_error, clubfeed, one_json_line
from tests.conftest import Server
from tests.consolekit import console_settings, log_in, logged_in
from tests.factories import Api, new_business


@pytest.fixture(scope="module")
def console(cli_url: str) -> Iterator[Server]:
    with Server(console_settings(cli_url)) as running:
        yield running


def _email() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}@gym.example"


def _create(cli_url: str, business_id: int, email: str) -> dict[str, Any]:
    made: dict[str, Any] = one_json_line(
        clubfeed(
            cli_url, "admin", "create", "--business", str(business_id), "--email", email, "--json"
        )
    )
    return made


def _login_status(console: Server, email: str, password: str) -> int:
    with httpx.Client(base_url=console.base_url, follow_redirects=False) as browser:
        return log_in(browser, email, password).status_code


def test_create_without_a_terminal_prints_a_password_that_logs_in(
    cli_url: str, api: Api, console: Server
) -> None:
    email = _email()
    business = api.tenant.business.id

    done = clubfeed(
        cli_url, "admin", "create", "--business", str(business), "--email", email.upper()
    )

    assert done.exit_code == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"Admin {email} of business {business} created."
    assert lines[1].startswith("Password (shown only now): ") and len(lines) == 2
    password = lines[1].rpartition(" ")[2]
    assert len(password) >= 12
    assert _login_status(console, email, password + "x") == 401
    with logged_in(console.base_url, email, password) as browser:
        assert f'<code id="business-id">{business}</code>' in browser.get("/console").text


def test_create_json_and_list(cli_url: str, engine: Engine, console: Server) -> None:
    business, other = new_business(engine).id, new_business(engine).id
    first, second = sorted([_email(), _email()])
    made = _create(cli_url, business, second)
    _create(cli_url, business, first)
    elsewhere = _create(cli_url, other, _email())

    assert set(made) == {"id", "business_id", "email", "password"}
    assert made["business_id"] == business and made["email"] == second
    assert _login_status(console, second, made["password"]) == 303
    rows = one_json_line(clubfeed(cli_url, "admin", "list", "--business", str(business), "--json"))
    assert [(r["business_id"], r["email"]) for r in rows] == [(business, first), (business, second)]
    assert set(rows[0]) == {"id", "business_id", "email", "created_at"}
    everyone = clubfeed(cli_url, "admin", "list").stdout.splitlines()
    assert f"{made['id']}\t{business}\t{second}" in everyone
    assert f"{elsewhere['id']}\t{other}\t{elsewhere['email']}" in everyone
    assert all("argon2" not in line for line in everyone)


def test_reset_password_replaces_it_and_ends_every_console_session(
    cli_url: str, api: Api, console: Server
) -> None:
    email = _email()
    old = _create(cli_url, api.tenant.business.id, email)["password"]
    with (
        logged_in(console.base_url, email, old) as first,
        logged_in(console.base_url, email, old) as second,
    ):
        assert first.get("/console").status_code == 200

        reset = one_json_line(clubfeed(cli_url, "admin", "reset-password", email.upper(), "--json"))

        assert set(reset) == {"id", "business_id", "email", "password", "sessions_ended"}
        assert reset["email"] == email and reset["sessions_ended"] == 2
        for browser in (first, second):
            ended = browser.get("/console")
            assert ended.status_code == 303 and "/console/login" in ended.headers["location"]
    assert _login_status(console, email, old) == 401
    assert _login_status(console, email, reset["password"]) == 303

    text = clubfeed(cli_url, "admin", "reset-password", email)
    assert text.exit_code == 0, text.stderr
    assert text.stdout.splitlines()[0] == (
        f"Password of admin {email} reset; console sessions ended: 1."
    )
    newest = text.stdout.splitlines()[1].rpartition(" ")[2]
    assert _login_status(console, email, reset["password"]) == 401
    assert _login_status(console, email, newest) == 303


def test_remove_deletes_the_login_and_ends_its_sessions(
    cli_url: str, api: Api, console: Server
) -> None:
    email, keep = _email(), _email()
    password = _create(cli_url, api.tenant.business.id, email)["password"]
    kept = _create(cli_url, api.tenant.business.id, keep)
    with logged_in(console.base_url, email, password) as browser:
        removed = one_json_line(clubfeed(cli_url, "admin", "remove", email, "--json"))

        assert removed == {
            "id": removed["id"],
            "business_id": api.tenant.business.id,
            "email": email,
            "sessions_ended": 1,
        }
        assert browser.get("/console").status_code == 303
    assert _login_status(console, email, password) == 401
    listed = one_json_line(clubfeed(cli_url, "admin", "list", "--json"))
    assert email not in [r["email"] for r in listed] and keep in [r["email"] for r in listed]
    assert _login_status(console, keep, kept["password"]) == 303

    again = clubfeed(cli_url, "admin", "remove", email)
    assert_clean_error(again, f"There is no admin {email}", "`clubfeed admin list`")


def test_reset_password_of_an_unknown_admin_fails_and_creates_nothing(cli_url: str) -> None:
    email = _email()
    for args in (("reset-password", email), ("reset-password", email, "--json")):
        assert_clean_error(clubfeed(cli_url, "admin", *args), f"There is no admin {email}")
    listed = one_json_line(clubfeed(cli_url, "admin", "list", "--json"))
    assert email not in [r["email"] for r in listed]


def test_a_duplicate_email_is_refused(cli_url: str, api: Api) -> None:
    email = _email()
    _create(cli_url, api.tenant.business.id, email)

    again = clubfeed(
        cli_url,
        "admin",
        "create",
        "--business",
        str(api.tenant.business.id),
        "--email",
        f" {email.upper()} ",
    )

    assert_clean_error(again)
    assert again.stderr.strip() == f"Error: An admin with email {email} exists already."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--business", "999999999", "--email", "x@gym.example"],
            "Error: There is no business 999999999.",
        ),
        (
            ["--business", "{business}", "--email", "not-an-email"],
            "Error: 'not-an-email' is not an email address.",
        ),
    ],
)
def test_an_unknown_business_or_a_bad_email_is_refused(
    cli_url: str, api: Api, args: list[str], message: str
) -> None:
    done = clubfeed(
        cli_url, "admin", "create", *(a.format(business=api.tenant.business.id) for a in args)
    )

    assert_clean_error(done)
    assert done.stderr.strip() == message
