"""Driving the console as a browser would: real HTTP, cookies, forms and their CSRF tokens.

Every test's admin (the OAuth tests' too) comes from here. Passwords are hashed
cheaply (argon2id, one pass over 32 KiB in one lane), and the console's own server
allows many logins a minute, since every test logs in from 127.0.0.1; the
rate-limit test starts a server with a tight limit instead.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from typing import Any

import httpx
from sqlalchemy import Engine

from clubfeed.auth import admins
from clubfeed.auth.passwords import hasher
from clubfeed.settings import Settings
from clubfeed.storage.engine import write_transaction

PASSWORD = "correct horse battery staple"
CHEAP: dict[str, Any] = {"password_time_cost": 1, "password_memory_kib": 32}

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}
PAGES = (
    "/console",
    "/console/secret",
    "/console/secret/rotate",
    "/console/apps",
    "/console/activity",
)


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.url, name)


def console_settings(db_url: str, **overrides: Any) -> Settings:
    return Settings(
        **{"database_url": db_url, "login_rate_limit": "100000/minute", **CHEAP, **overrides}
    )


def new_admin(engine: Engine, business_id: int, password: str = PASSWORD) -> admins.Admin:
    """An admin of `business_id` with a unique email and a cheaply hashed password."""
    with write_transaction(engine) as conn:
        return admins.create(
            conn,
            hasher(Settings(**CHEAP)),
            business_id=business_id,
            email=f"owner-{uuid.uuid4().hex[:12]}@gym.example",
            password=password,
        )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def log_in(
    client: httpx.Client, email: str, password: str = PASSWORD, next_path: str | None = None
) -> httpx.Response:
    """Open the login form (which sets its CSRF cookie) and submit it."""
    params = {} if next_path is None else {"next": next_path}
    form = client.get("/console/login", params=params)
    assert form.status_code == 200, form.text
    fields = {"email": email, "password": password, "csrf_token": csrf_of(form.text)}
    hidden = re.search(r'name="next" value="([^"]*)"', form.text)
    assert hidden is not None
    fields["next"] = hidden.group(1)
    return client.post("/console/login", data=fields)


@contextmanager
def logged_in(base_url: str, email: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
    """A new client (its own cookie jar) logged in as `email`; it follows no redirect."""
    with httpx.Client(base_url=base_url, timeout=60, follow_redirects=False) as client:
        response = log_in(client, email, password)
        assert response.status_code == 303, response.text
        yield client


class _Tables(HTMLParser):
    """Collects the text of every cell of every row of the table with a given id."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.depth = 0
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and (self.depth or dict(attrs).get("id") == self.table_id):
            self.depth += 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.depth:
            self.depth -= 1
        elif self.depth and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join(" ".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def table(html: str, table_id: str) -> list[list[str]]:
    """The rows (header row first) of the table `table_id`, each a list of cell texts."""
    parser = _Tables(table_id)
    parser.feed(html)
    assert parser.rows, f"no table #{table_id} in the page"
    return parser.rows


def text_of(html: str, element_id: str) -> str:
    found = re.search(rf'id="{re.escape(element_id)}"[^>]*>([^<]*)<', html)
    assert found, f"no element #{element_id} in the page"
    return found.group(1).strip()
