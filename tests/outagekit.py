"""What the database-trouble tests share: a PostgreSQL cluster of their own, the answers
an outage must give on each surface, and the requests of each kind that get them.

The cluster is created with Debian's `pg_createcluster` on a free port, so a test can
stop and start it (`pg_ctlcluster`) without touching the shared server on 5432.
"""

from __future__ import annotations

import html
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from tests.conftest import _free_port
from tests.consolekit import SECURITY_HEADERS
from tests.factories import Tenant, record
from tests.oauthkit import Connected, authorize_params, oauth_error, pkce, refresh
from tests.problemkit import LEAK_MARKERS, assert_problem

RETRY_AFTER = "1"


@dataclass(frozen=True)
class Cluster:
    """A PostgreSQL cluster made for one test module, trusting local connections."""

    version: str
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/clubfeed"

    def ctl(self, *args: str) -> None:
        _run("pg_ctlcluster", self.version, self.name, *args)

    def stop(self, mode: str) -> None:
        """Stop it (`fast`: sessions are terminated; `immediate`: no shutdown at all)."""
        self.ctl("stop", "-m", mode)

    def start(self) -> None:
        """Start it; returns once it accepts connections."""
        self.ctl("start")


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=120)


@contextmanager
def own_cluster() -> Iterator[Cluster]:
    """A new cluster with an empty `clubfeed` database, dropped (stopped first) at the end."""
    version = max(p.name for p in Path("/usr/lib/postgresql").iterdir())
    cluster = Cluster(version, f"clubfeed_t_{uuid.uuid4().hex[:10]}", _free_port())
    _run(
        "pg_createcluster", "--start", "-p", str(cluster.port), "-o", "fsync=off",
        version, cluster.name, "--", "--auth=trust",
    )  # fmt: skip
    try:
        admin = create_engine(
            cluster.url.replace("/clubfeed", "/postgres"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE clubfeed"))
        admin.dispose()
        yield cluster
    finally:
        _run("pg_dropcluster", "--stop", version, cluster.name)


def eventually(call: Callable[[], httpx.Response], status: int, within_s: float) -> httpx.Response:
    """Repeat `call` until it answers `status` or `within_s` has passed; the last answer."""
    deadline = time.monotonic() + within_s
    while True:
        response = call()
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


OUTCOMES = {
    "read": "",
    "nothing written": "nothing was written",
    "unknown": "may or may not have been saved",
}


def assert_unavailable(response: httpx.Response, outcome: str) -> str:
    """A 503 problem with Retry-After whose detail says the request's `outcome` (one of
    OUTCOMES: a read says nothing of writing); returns the detail."""
    body = assert_problem(response, 503, "service-unavailable")
    assert response.headers["retry-after"] == RETRY_AFTER
    detail: str = body["detail"]
    for name, words in OUTCOMES.items():
        if words:
            assert (words in detail) is (name == outcome), detail
    return detail


def assert_unavailable_token(response: httpx.Response) -> None:
    """RFC 6749's JSON error, as a token endpoint's clients parse it, with Retry-After."""
    body = oauth_error(response, 503, "temporarily_unavailable")
    assert response.headers["retry-after"] == RETRY_AFTER
    assert "nothing was changed" in body["error_description"]


def assert_unavailable_page(response: httpx.Response, *, retry_url: str | None) -> None:
    """A readable 503 page with the pages' security headers and a Try again link (for a GET)."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["retry-after"] == RETRY_AFTER
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name
    assert "<h1>clubfeed is briefly unavailable</h1>" in response.text
    assert not any(marker in response.text for marker in LEAK_MARKERS), response.text
    if retry_url is None:
        assert "Try again" not in response.text
        assert "nothing you submitted was saved" in response.text
    else:
        assert f'<a class="button" href="{html.escape(retry_url)}">Try again</a>' in response.text


@dataclass
class Callers:
    """One request of each kind a deployment serves, as a business, its app and its admin."""

    client: httpx.Client
    tenant: Tenant
    connected: Connected
    refresh_token: str = field(init=False)

    def __post_init__(self) -> None:
        self.refresh_token = self.connected.tokens["refresh_token"]

    def read(self) -> httpx.Response:
        return self.client.get(
            "/v1/locations", params={"limit": 1}, headers=self.tenant.read_headers
        )

    def write(self, record_id: str) -> httpx.Response:
        return self.client.put(
            f"/v1/locations/{record_id}",
            json=record("locations", record_id),
            headers=self.tenant.write_headers,
        )

    def console(self) -> httpx.Response:
        return self.client.get("/console", headers=self.connected.admin.headers)

    def console_form(self) -> httpx.Response:
        """The shared-secret page's Rotate button."""
        admin = self.connected.admin
        form = {"csrf_token": admin.csrf_token, "confirm": "yes"}
        return self.client.post("/console/secret/rotate", data=form, headers=admin.headers)

    def consent(self) -> httpx.Response:
        params = authorize_params(self.connected.app, pkce())
        return self.client.get(
            "/oauth/authorize", params=params, headers=self.connected.admin.headers
        )

    def token(self) -> httpx.Response:
        """A refresh; on success the new refresh token replaces the spent one."""
        response = refresh(self.client, self.connected.app, self.refresh_token)
        if response.status_code == 200:
            self.refresh_token = response.json()["refresh_token"]
        return response
