"""The authorization endpoint's rules: exact redirect URIs, S256 PKCE, scopes, repeats, CSRF."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine, func, select

from clubfeed.auth.credentials import NewIntegrator
from clubfeed.storage.engine import read_connection
from clubfeed.storage.schema import connections, oauth_codes, oauth_grants
from tests.factories import Tenant
from tests.oauthkit import (
    Admin,
    authorize_params,
    consent_page,
    decide,
    exchange,
    logged_in_admin,
    new_app,
    oauth_error,
    pkce,
    post_consent,
    query_of,
)

REGISTERED = "https://perk.example/oauth/cb"
NOT_REGISTERED = [
    "https://perk.example/oauth/cb/",  # a trailing slash
    "https://perk.example/oauth/cb/more",  # a path segment more
    "https://perk.example/oauth",  # a path segment less
    "https://perk.example/oauth/cb?next=1",  # a query
    "http://perk.example/oauth/cb",  # the scheme
    "https://perk.example:443/oauth/cb",  # the same place, spelled otherwise
    "https://PERK.example/oauth/cb",
    "https://perk.example.evil.test/oauth/cb",
    "https://perk.example/oauth/c",
    'https://perk.example/oauth/cb"',  # a character Authlib will not quote in an error
]


def assert_error_page(response: httpx.Response, status: int = 400) -> str:
    """An HTML page for the person, never a redirect to the client."""
    assert response.status_code == status, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "Nothing was shared" in response.text
    return response.text


def assert_error_redirect(response: httpx.Response, params: dict[str, str], error: str) -> None:
    """A 303 to the registered redirect URI carrying the error and the state (RFC 6749 §4.1.2.1)."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(params["redirect_uri"] + "?"), location
    answer = query_of(location)
    assert answer["error"] == error, answer
    assert answer["state"] == params["state"]
    assert "code" not in answer


def issued(db: Engine, app: NewIntegrator) -> tuple[int, int, int]:
    """How many grants, codes and connections the app has."""
    with read_connection(db) as conn:
        return (
            conn.execute(
                select(func.count()).where(oauth_grants.c.integrator_id == app.id)
            ).scalar_one(),
            conn.execute(
                select(func.count()).where(oauth_codes.c.integrator_id == app.id)
            ).scalar_one(),
            conn.execute(
                select(func.count()).where(connections.c.integrator_id == app.id)
            ).scalar_one(),
        )


@pytest.fixture
def admin(db: Engine, tenant: Tenant) -> Admin:
    return logged_in_admin(db, tenant.business.id)


@pytest.mark.parametrize("uri", NOT_REGISTERED)
def test_a_redirect_uri_not_registered_exactly_gets_an_error_page(
    client: httpx.Client, db: Engine, admin: Admin, uri: str
) -> None:
    app = new_app(db, REGISTERED, "https://perk.example/other")
    params = authorize_params(app, pkce(), redirect_uri=uri)
    text = assert_error_page(client.get("/oauth/authorize", params=params, headers=admin.headers))
    assert "registered" in text
    # Even with PKCE missing too (an error that would otherwise redirect), no redirect.
    params = authorize_params(app, pkce(), redirect_uri=uri, code_challenge=None)
    assert_error_page(client.get("/oauth/authorize", params=params, headers=admin.headers))
    # And Approve cannot force it through.
    response = post_consent(client, admin, params)
    assert_error_page(response)
    assert issued(db, app) == (0, 0, 0)


def test_an_unknown_or_missing_client_gets_an_error_page(
    client: httpx.Client, db: Engine, admin: Admin
) -> None:
    app = new_app(db)
    for client_id in ("cfid_unknown", None):
        params = authorize_params(app, pkce(), client_id=client_id)
        text = assert_error_page(
            client.get("/oauth/authorize", params=params, headers=admin.headers)
        )
        assert "invalid_client" in text


def test_the_redirect_uri_may_be_left_out_only_when_one_is_registered(
    client: httpx.Client, db: Engine, admin: Admin
) -> None:
    two = new_app(db, REGISTERED, "https://perk.example/other")
    params = authorize_params(two, pkce(), redirect_uri=None)
    assert_error_page(client.get("/oauth/authorize", params=params, headers=admin.headers))

    one = new_app(db, REGISTERED)
    proof = pkce()
    params = authorize_params(one, proof, redirect_uri=None)
    assert REGISTERED in consent_page(client, admin, params).text
    response = decide(client, admin, params)
    assert response.status_code == 303
    assert response.headers["location"].startswith(REGISTERED + "?code=")
    code = query_of(response.headers["location"])["code"]
    # The request named no redirect URI, so the token request need not either (RFC 6749 §4.1.3).
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": proof.verifier}
    tokens = client.post("/oauth/token", data=form, auth=(one.client_id, one.client_secret))
    assert tokens.status_code == 200, tokens.text


@pytest.mark.parametrize(
    "name",
    [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    ],
)
def test_a_parameter_sent_twice_gets_an_error_page(
    client: httpx.Client, db: Engine, admin: Admin, name: str
) -> None:
    app = new_app(db)
    params = authorize_params(app, pkce())
    twice = httpx.QueryParams([*params.items(), (name, params[name])])
    text = assert_error_page(client.get("/oauth/authorize", params=twice, headers=admin.headers))
    assert f"{name} was sent more than once" in text
    different = httpx.QueryParams([*params.items(), (name, "something-else")])
    assert_error_page(client.get("/oauth/authorize", params=different, headers=admin.headers))
    response = post_consent(client, admin, twice)
    assert_error_page(response)
    assert issued(db, app) == (0, 0, 0)


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge_method": None},
        {"code_challenge_method": "plain"},
        {"code_challenge_method": "s256"},
        {"code_challenge": None},
        {"code_challenge": "too-short"},
    ],
    ids=["no-pkce", "no-method", "plain", "lowercase-method", "no-challenge", "bad-challenge"],
)
def test_pkce_must_be_s256_and_errors_go_back_to_the_client(
    client: httpx.Client, db: Engine, admin: Admin, overrides: dict[str, str | None]
) -> None:
    app = new_app(db)
    params = authorize_params(app, pkce(), **overrides)
    # Refused before anyone logs in, and with a session alike.
    assert_error_redirect(client.get("/oauth/authorize", params=params), params, "invalid_request")
    response = client.get("/oauth/authorize", params=params, headers=admin.headers)
    assert_error_redirect(response, params, "invalid_request")
    approve = post_consent(client, admin, params)
    assert_error_redirect(approve, params, "invalid_request")
    assert issued(db, app) == (0, 0, 0)


@pytest.mark.parametrize("scope", ["checkins bogus", "CHECKINS", "   ", "checkins,users"])
def test_an_unknown_scope_is_invalid_scope(
    client: httpx.Client, db: Engine, admin: Admin, scope: str
) -> None:
    params = authorize_params(new_app(db), pkce(), scope=scope)
    response = client.get("/oauth/authorize", params=params, headers=admin.headers)
    assert_error_redirect(response, params, "invalid_scope")
    if scope.strip():
        # The error names the valid scopes, for the integrator's engineer.
        assert "checkins" in query_of(response.headers["location"])["error_description"]


@pytest.mark.parametrize("response_type", ["token", "code token", 'co"de', "CODE"])
def test_only_response_type_code_is_supported(
    client: httpx.Client, db: Engine, admin: Admin, response_type: str
) -> None:
    params = authorize_params(new_app(db), pkce(), response_type=response_type)
    response = client.get("/oauth/authorize", params=params, headers=admin.headers)
    assert_error_redirect(response, params, "unsupported_response_type")


def test_consent_without_this_sessions_csrf_token_is_refused(
    client: httpx.Client, db: Engine, tenant: Tenant, admin: Admin
) -> None:
    app = new_app(db)
    params = authorize_params(app, pkce())
    consent_page(client, admin, params)
    someone_else = logged_in_admin(db, tenant.business.id)
    for form in (
        {"decision": "approve"},
        {"decision": "approve", "csrf_token": ""},
        {"decision": "approve", "csrf_token": someone_else.csrf_token},
        {"decision": "approve", "csrf_token": admin.csrf_token[:-1]},
    ):
        response = client.post("/oauth/authorize", params=params, data=form, headers=admin.headers)
        assert_error_page(response, 403)
    # Without a session the admin is sent to log in, and nothing is issued either.
    response = client.post(
        "/oauth/authorize",
        params=params,
        data={"decision": "approve", "csrf_token": admin.csrf_token},
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login?next=")
    assert issued(db, app) == (0, 0, 0)


def test_consent_needs_a_decision(client: httpx.Client, db: Engine, admin: Admin) -> None:
    app = new_app(db)
    params = authorize_params(app, pkce())
    for form in ({}, {"decision": "yes please"}):
        response = client.post(
            "/oauth/authorize",
            params=params,
            data={"csrf_token": admin.csrf_token, **form},
            headers=admin.headers,
        )
        assert_error_page(response)
    assert issued(db, app) == (0, 0, 0)


def test_approval_records_the_grant_the_code_and_the_connection(
    client: httpx.Client, db: Engine, admin: Admin
) -> None:
    app = new_app(db)
    proof = pkce()
    params = authorize_params(app, proof)
    response = post_consent(client, admin, params)
    assert response.status_code == 303
    assert response.headers["referrer-policy"] == "no-referrer"
    assert issued(db, app) == (1, 1, 1)
    code = query_of(response.headers["location"])["code"]
    # The code is bound to the redirect URI the request named.
    oauth_error(exchange(client, app, code, proof.verifier, redirect_uri=""), 400, "invalid_grant")
    elsewhere = "http://127.0.0.1:9/elsewhere"
    oauth_error(
        exchange(client, app, code, proof.verifier, redirect_uri=elsewhere), 400, "invalid_grant"
    )
    assert exchange(client, app, code, proof.verifier).status_code == 200
