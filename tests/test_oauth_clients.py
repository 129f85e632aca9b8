"""Real OAuth clients refreshing one grant from several threads at once, through real HTTP.

requests-oauthlib and Authlib (sync, and async over httpx) share one session across
four workers whose access token has just expired, so all four refresh with the same
refresh token at the same moment. Within the grace window each gets the pair the
first refresh produced: no request fails, and the grant lives on.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from requests_oauthlib import OAuth2Session
from sqlalchemy import Engine

from clubfeed.settings import Settings
from tests.conftest import Server
from tests.factories import Tenant
from tests.oauthkit import Connected, connect, feed_status, oauth_error, refresh

WORKERS = 4


@pytest.fixture(autouse=True)
def _plain_http_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """oauthlib insists on https; these servers listen on loopback, where http is allowed."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def _expired(tokens: dict[str, Any]) -> dict[str, Any]:
    """The token response as a client keeps it, its access token past its expiry."""
    return {**tokens, "expires_in": -10, "expires_at": time.time() - 10}


def _all_at_once(work: Callable[[], int]) -> list[int]:
    """`work` in WORKERS threads released together; each one's status."""
    start, statuses = threading.Barrier(WORKERS), [0] * WORKERS

    def run(i: int) -> None:
        start.wait()
        statuses[i] = work()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


def _still_granted(client: httpx.Client, granted: Connected, refresh_token: str) -> None:
    """The grant survived: the newest refresh token still refreshes, and its token reads."""
    again = refresh(client, granted.app, refresh_token)
    assert again.status_code == 200, again.text
    assert feed_status(client, granted.read_headers(again.json()["access_token"])) == 200


def test_requests_oauthlib_workers_sharing_a_session_all_refresh(
    client: httpx.Client, server: Server, db: Engine, tenant: Tenant
) -> None:
    granted = connect(client, db, tenant.business.id)
    updates: list[dict[str, Any]] = []
    session = OAuth2Session(
        granted.app.client_id,
        token=_expired(granted.tokens),
        auto_refresh_url=f"{server.base_url}/oauth/token",
        auto_refresh_kwargs={
            "client_id": granted.app.client_id,
            "client_secret": granted.app.client_secret,
        },
        token_updater=updates.append,
    )
    url = f"{server.base_url}/v1/checkins"

    def read() -> int:
        headers = {"X-Integrator-Key": granted.app.key}
        return session.get(url, headers=headers, timeout=30).status_code

    assert _all_at_once(read) == [200] * WORKERS
    assert len(updates) == WORKERS
    assert len({u["refresh_token"] for u in updates}) == 1, "each got the same successor"
    _still_granted(client, granted, updates[0]["refresh_token"])


def test_authlib_workers_sharing_a_session_all_refresh(
    client: httpx.Client, server: Server, db: Engine, tenant: Tenant
) -> None:
    granted = connect(client, db, tenant.business.id)
    updates: list[dict[str, Any]] = []
    session = AuthlibSession(
        granted.app.client_id,
        granted.app.client_secret,
        token=_expired(granted.tokens),
        token_endpoint=f"{server.base_url}/oauth/token",
        token_endpoint_auth_method="client_secret_post",
        update_token=lambda token, **_: updates.append(token),
    )
    url = f"{server.base_url}/v1/checkins"

    def read() -> int:
        return session.get(url, headers={"X-Integrator-Key": granted.app.key}).status_code

    assert _all_at_once(read) == [200] * WORKERS
    assert updates and len({u["refresh_token"] for u in updates}) == 1
    _still_granted(client, granted, updates[-1]["refresh_token"])


def test_authlib_async_tasks_sharing_a_client_all_refresh(
    client: httpx.Client, server: Server, db: Engine, tenant: Tenant
) -> None:
    granted = connect(client, db, tenant.business.id)
    updates: list[dict[str, Any]] = []

    async def update(token: dict[str, Any], **_: Any) -> None:
        updates.append(token)

    async def main() -> list[int]:
        async with AsyncOAuth2Client(
            granted.app.client_id,
            granted.app.client_secret,
            token=_expired(granted.tokens),
            token_endpoint=f"{server.base_url}/oauth/token",
            token_endpoint_auth_method="client_secret_post",
            update_token=update,
        ) as oauth:
            headers = {"X-Integrator-Key": granted.app.key}
            replies = await asyncio.gather(
                *(oauth.get(f"{server.base_url}/v1/checkins", headers=headers) for _ in range(4))
            )
        return [r.status_code for r in replies]

    assert asyncio.run(main()) == [200] * WORKERS
    assert updates and len({u["refresh_token"] for u in updates}) == 1
    _still_granted(client, granted, updates[-1]["refresh_token"])


def _rotated_once(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> tuple[Connected, str, dict[str, Any]]:
    """A new grant whose first refresh token was used once: (grant, that token, the pair)."""
    granted = connect(client, db, tenant.business.id)
    first = granted.tokens["refresh_token"]
    return granted, first, refresh(client, granted.app, first).json()


def test_a_refresh_token_presented_again_in_the_window_gets_the_same_pair(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    """Again and again within the window: the newest live pair of its line, never a new one."""
    granted, first, second = _rotated_once(client, db, tenant)
    assert refresh(client, granted.app, first).json() == {
        **second,
        "expires_in": pytest.approx(second["expires_in"], abs=2),
    }
    third = refresh(client, granted.app, second["refresh_token"]).json()
    # The first token's line now ends at the third pair.
    replayed = refresh(client, granted.app, first).json()
    assert replayed["refresh_token"] == third["refresh_token"]
    assert replayed["access_token"] == third["access_token"]
    assert replayed["business_id"] == tenant.business.id
    assert feed_status(client, granted.read_headers(third["access_token"])) == 200


def test_a_replay_whose_access_token_was_revoked_is_refused_and_the_grant_lives(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    """The pair a refresh gave is not handed out again once its access token was ended."""
    granted, first, second = _rotated_once(client, db, tenant)
    app = granted.app
    ended = client.post(
        "/oauth/revoke",
        data={"token": second["access_token"]},
        auth=(app.client_id, app.client_secret),
    )
    assert ended.status_code == 200, ended.text
    body = oauth_error(refresh(client, app, first), 400, "invalid_grant")
    assert body["error_description"] == (
        "This refresh token was already used, and the access token that use gave has been "
        "revoked or has expired since; refresh with the refresh token that came with it."
    )
    _still_granted(client, granted, second["refresh_token"])


def test_a_line_longer_than_the_server_follows_is_refused_without_revoking(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    """Eight tokens of a line are followed: the first of nine is refused, and says why."""
    granted = connect(client, db, tenant.business.id)
    line = [granted.tokens["refresh_token"]]
    for _ in range(8):
        line.append(refresh(client, granted.app, line[-1]).json()["refresh_token"])
    body = oauth_error(refresh(client, granted.app, line[0]), 400, "invalid_grant")
    assert body["error_description"] == (
        "This refresh token was already used, and so were the next 7 that replaced it; "
        "refresh with the newest refresh token you were given."
    )
    assert refresh(client, granted.app, line[1]).json()["refresh_token"] == line[-1]
    _still_granted(client, granted, line[-1])


@pytest.fixture(scope="module")
def short_grace(db: Engine, db_url: str) -> Iterator[httpx.Client]:
    with (
        Server(Settings(database_url=db_url, refresh_grace_s=1)) as running,
        httpx.Client(base_url=running.base_url) as http,
    ):
        yield http


def test_after_the_window_reuse_revokes_the_grant(
    short_grace: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    granted, first, second = _rotated_once(short_grace, db, tenant)
    time.sleep(1.2)
    body = oauth_error(refresh(short_grace, granted.app, first), 400, "invalid_grant")
    assert "already used; the grant was revoked" in body["error_description"]
    assert feed_status(short_grace, granted.read_headers(second["access_token"])) == 401
