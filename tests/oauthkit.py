"""What the OAuth tests share: a registered app, a logged-in admin, PKCE, and the flow's steps over HTTP.

The admin, their password and the consent form's CSRF field come from `consolekit`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from sqlalchemy import Engine

from clubfeed.auth import credentials, sessions
from clubfeed.storage.engine import write_transaction
from tests.consolekit import csrf_of, new_admin

REDIRECT_URI = "http://127.0.0.1:9/callback"


def new_app(
    engine: Engine, *redirect_uris: str, name: str = "Perkville"
) -> credentials.NewIntegrator:
    """An integrator registered as an OAuth client (redirect URIs default to one loopback URI)."""
    with write_transaction(engine) as conn:
        return credentials.create_integrator(conn, name, redirect_uris or (REDIRECT_URI,))


@dataclass(frozen=True)
class Admin:
    """A business's admin, logged in: `cookie` is the session cookie's value."""

    business_id: int
    email: str
    cookie: str
    csrf_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": f"{sessions.COOKIE}={self.cookie}"}


def logged_in_admin(engine: Engine, business_id: int) -> Admin:
    """An admin of `business_id` with a live session (as the console's login would start)."""
    admin = new_admin(engine, business_id)
    with write_transaction(engine) as conn:
        cookie = sessions.start(conn, admin, 3600)
        session = sessions.find(conn, cookie)
    assert session is not None
    return Admin(business_id, admin.email, cookie, session.csrf_token)


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str


def pkce() -> Pkce:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return Pkce(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode())


def authorize_params(
    app: credentials.NewIntegrator, proof: Pkce, **overrides: str | None
) -> dict[str, str]:
    """A valid authorization request; an override of None leaves that parameter out."""
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": app.redirect_uris[0],
        "scope": "checkins users",
        "state": "st-" + secrets.token_hex(4),
        "code_challenge": proof.challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return {name: value for name, value in params.items() if value is not None}


def query_of(location: str) -> dict[str, str]:
    """The parameters of a redirect's query, each sent once."""
    parsed = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert all(len(values) == 1 for values in parsed.values()), location
    return {name: values[0] for name, values in parsed.items()}


def consent_page(client: httpx.Client, admin: Admin, params: Any) -> httpx.Response:
    response = client.get("/oauth/authorize", params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    return response


def post_consent(
    client: httpx.Client, admin: Admin, params: Any, form: dict[str, str] | None = None
) -> httpx.Response:
    """POST the consent form as `admin`: Approve with the session's CSRF token unless `form` says otherwise."""
    data = {"csrf_token": admin.csrf_token, "decision": "approve", **(form or {})}
    return client.post("/oauth/authorize", params=params, data=data, headers=admin.headers)


def decide(
    client: httpx.Client, admin: Admin, params: Any, decision: str = "approve"
) -> httpx.Response:
    """Show the consent page, then press a button on it (its form, its CSRF token)."""
    page = consent_page(client, admin, params)
    return post_consent(
        client, admin, params, {"csrf_token": csrf_of(page.text), "decision": decision}
    )


def approve(client: httpx.Client, admin: Admin, params: dict[str, str]) -> str:
    """Approve the request; the code the browser brings back to the redirect URI."""
    response = decide(client, admin, params)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(params.get("redirect_uri", REDIRECT_URI) + "?"), location
    answer = query_of(location)
    assert answer["state"] == params["state"]
    return answer["code"]


def exchange(
    client: httpx.Client,
    app: credentials.NewIntegrator,
    code: str,
    verifier: str,
    **overrides: str,
) -> httpx.Response:
    """POST /oauth/token for a code, authenticating with HTTP Basic."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": app.redirect_uris[0],
        "code_verifier": verifier,
        **overrides,
    }
    return client.post("/oauth/token", data=form, auth=(app.client_id, app.client_secret))


def refresh(
    client: httpx.Client, app: credentials.NewIntegrator, refresh_token: str
) -> httpx.Response:
    """POST /oauth/token for a refresh, authenticating with client_secret_post."""
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
    }
    return client.post("/oauth/token", data=form)


@dataclass(frozen=True)
class Connected:
    """The end of a successful flow: the app, the admin who approved, and the token response."""

    app: credentials.NewIntegrator
    admin: Admin
    tokens: dict[str, Any]

    def read_headers(self, access_token: str | None = None) -> dict[str, str]:
        token = access_token or self.tokens["access_token"]
        return {"X-Integrator-Key": self.app.key, "Authorization": f"Bearer {token}"}


def connect(
    client: httpx.Client,
    engine: Engine,
    business_id: int,
    app: credentials.NewIntegrator | None = None,
    scope: str = "checkins users",
) -> Connected:
    """The whole flow: an admin approves, the app exchanges the code for tokens."""
    app = app or new_app(engine)
    admin = logged_in_admin(engine, business_id)
    proof = pkce()
    code = approve(client, admin, authorize_params(app, proof, scope=scope))
    response = exchange(client, app, code, proof.verifier)
    assert response.status_code == 200, response.text
    return Connected(app, admin, response.json())


def oauth_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """An RFC 6749 §5.2 error body with this status and code, never cached."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    # Every error says, in words, what went wrong and what to do.
    assert set(body) == {"error", "error_description"}, body
    assert len(body["error_description"]) > 20, body
    return body


def post_pairs(
    client: httpx.Client, path: str, pairs: list[tuple[str, str]], **kw: Any
) -> httpx.Response:
    """POST a form that may repeat a name (httpx's `data=` takes a mapping)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return client.post(path, content=urlencode(pairs), headers=headers, **kw)


def feed_status(client: httpx.Client, headers: dict[str, str], resource: str = "checkins") -> int:
    return client.get(f"/v1/{resource}", headers=headers).status_code
