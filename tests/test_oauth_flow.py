"""The OAuth flow end to end over real HTTP on both databases: consent, code, tokens, the feed."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine

from tests.factories import Api, Tenant, new_integrator, new_tenant, record
from tests.oauthkit import (
    REDIRECT_URI,
    authorize_params,
    connect,
    decide,
    feed_status,
    logged_in_admin,
    new_app,
    pkce,
    query_of,
)
from tests.problemkit import assert_problem


def test_an_approved_app_reads_exactly_the_granting_business(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    mine, theirs = Api(client, tenant), Api(client, new_tenant(db))
    mine.seed()
    refs = theirs.seed()
    only_theirs = record("checkins", "theirs-only", refs)
    assert theirs.put("checkins", "theirs-only", only_theirs).status_code == 201

    app = new_app(db)
    granted = connect(client, db, tenant.business.id, app)
    assert granted.tokens["token_type"] == "Bearer"
    assert granted.tokens["expires_in"] == 3600
    assert granted.tokens["scope"] == "users checkins"

    response = client.get("/v1/checkins", headers=granted.read_headers())
    assert response.status_code == 200, response.text
    assert response.json()["data"] == mine.read_all("/v1/checkins")
    assert "theirs-only" not in response.text

    # The same app, approved by the other business, reads that business's records with that token.
    other = connect(client, db, theirs.tenant.business.id, app)
    their_records = client.get("/v1/checkins", headers=other.read_headers()).json()["data"]
    assert their_records == theirs.read_all("/v1/checkins")
    assert "theirs-only" in {r["id"] for r in their_records}

    foreign_key = {**granted.read_headers(), "X-Integrator-Key": new_integrator(db).key}
    assert_problem(client.get("/v1/checkins", headers=foreign_key), 401, "unauthenticated")
    no_key = {"Authorization": granted.read_headers()["Authorization"]}
    assert_problem(client.get("/v1/checkins", headers=no_key), 401, "unauthenticated")

    # Outside its scope, by each read: 403 saying what the token covers, and (RFC 6750 §3.1)
    # which scope the request would need.
    for outside in (
        client.get("/v1/sales", headers=granted.read_headers()),
        client.get("/v1/sales/s-1", headers=granted.read_headers()),
        client.post("/v1/sales/lookup", json={"ids": ["s-1"]}, headers=granted.read_headers()),
    ):
        body = assert_problem(outside, 403, "forbidden")
        assert "users, checkins" in body["detail"]
        assert outside.headers["www-authenticate"] == (
            'Bearer realm="clubfeed", error="insufficient_scope", scope="sales"'
        )
    assert feed_status(client, granted.read_headers(), "users") == 200


def test_omitting_scope_asks_for_every_resource(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    admin = logged_in_admin(db, tenant.business.id)
    app = new_app(db, name="Everything Loyalty")
    params = authorize_params(app, pkce(), scope=None)
    page = client.get("/oauth/authorize", params=params, headers=admin.headers)
    assert page.status_code == 200
    for words in ("Locations", "Check-ins", "Class attendances", "Appointment categories"):
        assert words in page.text


def test_the_consent_page_names_who_asks_for_what(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    admin = logged_in_admin(db, tenant.business.id)
    app = new_app(db, name="Perk & Co")
    proof = pkce()
    params = authorize_params(app, proof, scope="checkins")
    page = client.get("/oauth/authorize", params=params, headers=admin.headers)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Perk &amp; Co" in page.text and "Perk & Co" not in page.text
    assert tenant.business.name in page.text
    assert "Check-ins" in page.text and "Users" not in page.text
    assert "Read-only" in page.text
    assert admin.email in page.text and REDIRECT_URI in page.text
    assert f'value="{admin.csrf_token}"' in page.text
    assert 'value="approve"' in page.text and 'value="deny"' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"


def test_without_a_session_the_admin_logs_in_first_and_comes_back(
    client: httpx.Client, db: Engine
) -> None:
    params = authorize_params(new_app(db), pkce())
    response = client.get("/oauth/authorize", params=params)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/console/login?next=")
    back = query_of(location)["next"]
    assert back.startswith("/oauth/authorize?")
    assert query_of(back) == params
    assert response.headers["x-frame-options"] == "DENY"


def test_deny_sends_access_denied_with_the_state(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    admin = logged_in_admin(db, tenant.business.id)
    app = new_app(db)
    params = authorize_params(app, pkce())
    response = decide(client, admin, params, "deny")
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    answer = query_of(location)
    assert answer["error"] == "access_denied"
    assert answer["state"] == params["state"]
    assert "code" not in answer
