"""The token endpoint's rules: codes and refresh tokens good once, bound to their client; limits."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import Engine

from clubfeed.settings import Settings
from tests.conftest import Server
from tests.factories import Tenant, new_tenant
from tests.oauthkit import (
    Admin,
    approve,
    authorize_params,
    connect,
    exchange,
    feed_status,
    logged_in_admin,
    new_app,
    oauth_error,
    pkce,
    post_pairs,
    refresh,
)


@pytest.fixture
def admin(db: Engine, tenant: Tenant) -> Admin:
    return logged_in_admin(db, tenant.business.id)


@pytest.fixture(scope="module")
def tight(db: Engine, db_url: str) -> Iterator[httpx.Client]:
    """A server whose codes and access tokens live one second, allowing 3 client requests a minute."""
    settings = Settings(
        database_url=db_url,
        authorization_code_ttl_s=1,
        access_token_ttl_s=1,
        token_rate_limit="3/minute",
    )
    with Server(settings) as running, httpx.Client(base_url=running.base_url) as http:
        yield http


def test_token_responses_are_never_cached(client: httpx.Client, db: Engine, tenant: Tenant) -> None:
    app = new_app(db)
    admin = logged_in_admin(db, tenant.business.id)
    proof = pkce()
    code = approve(client, admin, authorize_params(app, proof))
    response = exchange(client, app, code, proof.verifier)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert set(response.json()) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
        "business_id",
        "business_name",
    }
    # It names the business that granted it.
    assert response.json()["business_id"] == tenant.business.id
    assert response.json()["business_name"] == tenant.business.name


def test_the_verifier_must_match_the_challenge(
    client: httpx.Client, db: Engine, admin: Admin
) -> None:
    app = new_app(db)
    proof = pkce()
    code = approve(client, admin, authorize_params(app, proof))
    oauth_error(exchange(client, app, code, pkce().verifier), 400, "invalid_grant")
    oauth_error(exchange(client, app, code, proof.challenge), 400, "invalid_grant")
    oauth_error(exchange(client, app, code, ""), 400, "invalid_request")
    oauth_error(exchange(client, app, code, "short"), 400, "invalid_request")
    # A request that fails its checks does not spend the code: its rightful holder still can.
    assert exchange(client, app, code, proof.verifier).status_code == 200


def test_a_parameter_sent_twice_is_invalid_request(
    client: httpx.Client, db: Engine, admin: Admin
) -> None:
    app = new_app(db)
    proof = pkce()
    code = approve(client, admin, authorize_params(app, proof))
    good = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": app.redirect_uris[0],
        "code_verifier": proof.verifier,
    }
    auth = (app.client_id, app.client_secret)
    for name in good:
        form = [*good.items(), (name, good[name])]
        response = post_pairs(client, "/oauth/token", form, auth=auth)
        body = oauth_error(response, 400, "invalid_request")
        assert name in body["error_description"]
    posted = [*good.items(), ("client_id", app.client_id), ("client_id", app.client_id)]
    posted.append(("client_secret", app.client_secret))
    response = post_pairs(client, "/oauth/token", posted)
    oauth_error(response, 400, "invalid_request")
    assert client.post("/oauth/token", data=good, auth=auth).status_code == 200


def test_one_clients_code_is_refused_to_another(
    client: httpx.Client, db: Engine, admin: Admin
) -> None:
    mine, theirs = new_app(db), new_app(db, name="Other Loyalty")
    proof = pkce()
    code = approve(client, admin, authorize_params(mine, proof))
    oauth_error(exchange(client, theirs, code, proof.verifier), 400, "invalid_grant")
    assert exchange(client, mine, code, proof.verifier).status_code == 200


def test_a_reused_code_revokes_the_tokens_it_produced(
    client: httpx.Client, db: Engine, admin: Admin
) -> None:
    app = new_app(db)
    proof = pkce()
    code = approve(client, admin, authorize_params(app, proof))
    tokens = exchange(client, app, code, proof.verifier).json()
    headers = {"X-Integrator-Key": app.key, "Authorization": f"Bearer {tokens['access_token']}"}
    assert feed_status(client, headers) == 200
    oauth_error(exchange(client, app, code, proof.verifier), 400, "invalid_grant")
    assert feed_status(client, headers) == 401
    oauth_error(refresh(client, app, tokens["refresh_token"]), 400, "invalid_grant")


def test_racing_exchanges_of_one_code_win_once_and_revoke_the_winner(
    server: Server, db: Engine, admin: Admin
) -> None:
    app = new_app(db)
    proof = pkce()
    with httpx.Client(base_url=server.base_url) as browser:
        code = approve(browser, admin, authorize_params(app, proof))

    def attempt(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.base_url, timeout=60) as own:
            return exchange(own, app, code, proof.verifier)

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(attempt, range(4)))
    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) == 1, [r.text for r in responses]
    for loser in responses:
        if loser.status_code != 200:
            oauth_error(loser, 400, "invalid_grant")
    token = winners[0].json()["access_token"]
    with httpx.Client(base_url=server.base_url) as reader:
        headers = {"X-Integrator-Key": app.key, "Authorization": f"Bearer {token}"}
        assert feed_status(reader, headers) == 401


@pytest.fixture(scope="module")
def no_grace(db: Engine, db_url: str) -> Iterator[httpx.Client]:
    """A server where a spent refresh token presented again revokes its grant at once."""
    with (
        Server(Settings(database_url=db_url, refresh_grace_s=0)) as running,
        httpx.Client(base_url=running.base_url) as http,
    ):
        yield http


def test_refresh_tokens_rotate_and_reuse_revokes_the_grant(
    no_grace: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    client = no_grace
    granted = connect(client, db, tenant.business.id)
    app, first = granted.app, granted.tokens

    response = refresh(client, app, first["refresh_token"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == first["scope"] == "users checkins"
    assert feed_status(client, granted.read_headers(second["access_token"])) == 200
    # The rotated pair's access token ends with it.
    assert feed_status(client, granted.read_headers(first["access_token"])) == 401

    third = refresh(client, app, second["refresh_token"]).json()
    assert feed_status(client, granted.read_headers(third["access_token"])) == 200

    # The first refresh token again: two parties hold it, so the whole grant goes.
    reused = oauth_error(refresh(client, app, first["refresh_token"]), 400, "invalid_grant")
    assert reused["error_description"] == (
        "This refresh token was already used; the grant was revoked for safety. "
        "Ask the business to connect the app again."
    )
    assert feed_status(client, granted.read_headers(third["access_token"])) == 401
    revoked = oauth_error(refresh(client, app, third["refresh_token"]), 400, "invalid_grant")
    assert revoked["error_description"].startswith("The business revoked this app's access")


def test_a_second_consent_replaces_the_first(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    """Approving the app again, for less, ends what the wider first approval gave it."""
    wide = connect(client, db, tenant.business.id, scope="checkins users")
    app = wide.app
    assert feed_status(client, wide.read_headers(), "users") == 200
    other_app = connect(client, db, tenant.business.id, new_app(db, name="Other Loyalty"))
    other_gym = connect(client, db, new_tenant(db).business.id, app)

    narrow = connect(client, db, tenant.business.id, app, scope="checkins")

    assert narrow.tokens["scope"] == "checkins"
    assert feed_status(client, wide.read_headers(), "users") == 401
    assert feed_status(client, wide.read_headers()) == 401
    oauth_error(refresh(client, app, wide.tokens["refresh_token"]), 400, "invalid_grant")
    assert feed_status(client, narrow.read_headers()) == 200
    assert feed_status(client, narrow.read_headers(), "users") == 403
    # Only this app's grants at this business were replaced.
    assert feed_status(client, other_app.read_headers(), "users") == 200
    assert feed_status(client, other_gym.read_headers(), "users") == 200


def test_one_clients_refresh_token_is_refused_to_another(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    granted = connect(client, db, tenant.business.id)
    other = new_app(db, name="Other Loyalty")
    refresh_token = granted.tokens["refresh_token"]
    oauth_error(refresh(client, other, refresh_token), 400, "invalid_grant")
    # Nothing was spent or revoked by the attempt.
    assert feed_status(client, granted.read_headers()) == 200
    assert refresh(client, granted.app, refresh_token).status_code == 200


def test_a_refresh_may_not_widen_the_scope(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    granted = connect(client, db, tenant.business.id, scope="checkins users")
    app = granted.app
    form = {
        "grant_type": "refresh_token",
        "refresh_token": granted.tokens["refresh_token"],
        "scope": "checkins sales",
    }
    response = client.post("/oauth/token", data=form, auth=(app.client_id, app.client_secret))
    oauth_error(response, 400, "invalid_scope")
    # Asking for less still answers with the grant's scope, and says so.
    narrower = client.post(
        "/oauth/token", data={**form, "scope": "checkins"}, auth=(app.client_id, app.client_secret)
    )
    assert narrower.status_code == 200, narrower.text
    assert narrower.json()["scope"] == "users checkins"


def test_the_client_must_authenticate(client: httpx.Client, db: Engine, admin: Admin) -> None:
    app = new_app(db)
    proof = pkce()
    code = approve(client, admin, authorize_params(app, proof))
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": app.redirect_uris[0],
        "code_verifier": proof.verifier,
    }
    unauthenticated = [
        client.post("/oauth/token", data=form, auth=(app.client_id, "cfcs_wrong")),
        client.post("/oauth/token", data=form, auth=("cfid_unknown", app.client_secret)),
        client.post("/oauth/token", data=form),
    ]
    for response in unauthenticated:
        oauth_error(response, 401, "invalid_client")
        assert response.headers["www-authenticate"].startswith("Basic ")
    response = client.post(
        "/oauth/token",
        data={**form, "client_id": app.client_id, "client_secret": "cfcs_wrong"},
    )
    oauth_error(response, 401, "invalid_client")
    both = {**form, "client_id": app.client_id, "client_secret": app.client_secret}
    response = client.post("/oauth/token", data=both, auth=(app.client_id, app.client_secret))
    oauth_error(response, 400, "invalid_request")
    # Credentials belong in the body or the Authorization header, never in the URL.
    response = client.post(
        "/oauth/token",
        params={"client_secret": app.client_secret},
        data=form,
        auth=(app.client_id, app.client_secret),
    )
    oauth_error(response, 400, "invalid_request")
    response = client.post("/oauth/token", json=form, auth=(app.client_id, app.client_secret))
    oauth_error(response, 400, "invalid_request")
    # Basic credentials that are not base64 of UTF-8 "id:secret" fail authentication on both
    # endpoints: bytes that are not UTF-8, a character outside base64 (even after the right
    # credentials, which a lenient decoder would skip to), no colon, nothing at all.
    right = base64.b64encode(f"{app.client_id}:{app.client_secret}".encode()).decode()
    malformed = [
        "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
        "Basic " + base64.b64encode(app.client_id.encode() + b"\xff:x").decode(),
        f"Basic {right}!",
        f"Basic {right[:-1]}",
        "Basic " + base64.b64encode(app.client_id.encode()).decode(),
        "Basic",
    ]
    for authorization in malformed:
        for path, data in (("/oauth/token", form), ("/oauth/revoke", {"token": code})):
            response = client.post(path, data=data, headers={"Authorization": authorization})
            oauth_error(response, 401, "invalid_client")
            assert response.headers["www-authenticate"].startswith("Basic "), authorization
    for grant_type in ("password", "client_credentials", "implicit"):
        response = client.post(
            "/oauth/token",
            data={**form, "grant_type": grant_type},
            auth=(app.client_id, app.client_secret),
        )
        oauth_error(response, 400, "unsupported_grant_type")
    assert client.post("/oauth/token", data=both).status_code == 200


def test_codes_and_access_tokens_expire(tight: httpx.Client, db: Engine, tenant: Tenant) -> None:
    admin = logged_in_admin(db, tenant.business.id)
    granted = connect(tight, db, tenant.business.id)
    assert granted.tokens["expires_in"] == 1
    # Another app's code: a second consent to the same app would end the first grant.
    slow, proof = new_app(db, name="Slow Loyalty"), pkce()
    late = approve(tight, admin, authorize_params(slow, proof))
    assert feed_status(tight, granted.read_headers()) == 200
    time.sleep(1.1)
    assert feed_status(tight, granted.read_headers()) == 401
    oauth_error(exchange(tight, slow, late, proof.verifier), 400, "invalid_grant")
    # An expired access token is refreshed as usual.
    renewed = refresh(tight, granted.app, granted.tokens["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    assert feed_status(tight, granted.read_headers(renewed.json()["access_token"])) == 200


def test_client_requests_are_rate_limited(tight: httpx.Client, db: Engine) -> None:
    busy, quiet = new_app(db), new_app(db, name="Quiet Loyalty")
    for _ in range(3):
        oauth_error(refresh(tight, busy, "cfr_unknown"), 400, "invalid_grant")
    limited = refresh(tight, busy, "cfr_unknown")
    body = oauth_error(limited, 429, "slow_down")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.headers["retry-after"] in body["error_description"]
    revoke = {"token": "cfa_unknown"}
    revoked = tight.post("/oauth/revoke", data=revoke, auth=(busy.client_id, busy.client_secret))
    oauth_error(revoked, 429, "slow_down")

    # Another client has its own allowance...
    oauth_error(refresh(tight, quiet, "cfr_unknown"), 400, "invalid_grant")
    # ...and wrong credentials count against the address, not the client they name.
    wrong = (quiet.client_id, "cfcs_wrong")
    for _ in range(3):
        response = tight.post("/oauth/token", data={"grant_type": "refresh_token"}, auth=wrong)
        oauth_error(response, 401, "invalid_client")
    response = tight.post("/oauth/token", data={"grant_type": "refresh_token"}, auth=wrong)
    oauth_error(response, 429, "slow_down")
    assert int(response.headers["retry-after"]) >= 1
    oauth_error(tight.post("/oauth/token", data={"grant_type": "x"}), 429, "slow_down")
    oauth_error(refresh(tight, quiet, "cfr_unknown"), 400, "invalid_grant")
