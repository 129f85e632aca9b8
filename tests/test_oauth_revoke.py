"""Ending access: RFC 7009 revocation, the business revoking the app; and what the server publishes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from jsonschema import Draft202012Validator
from sqlalchemy import Engine

from clubfeed import catalogue
from clubfeed.auth import connections, tokens
from clubfeed.settings import Settings
from clubfeed.storage.engine import write_transaction
from tests.conftest import Server
from tests.factories import Tenant
from tests.oauthkit import Connected, connect, feed_status, new_app, oauth_error, refresh


def _revoke(client: httpx.Client, granted: Connected, token: str, **form: str) -> httpx.Response:
    app = granted.app
    return client.post(
        "/oauth/revoke", data={"token": token, **form}, auth=(app.client_id, app.client_secret)
    )


def _assert_revoked_answer(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {}
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token", "id_token"])
def test_revoking_an_access_token_ends_only_it(
    client: httpx.Client, db: Engine, tenant: Tenant, hint: str | None
) -> None:
    granted = connect(client, db, tenant.business.id)
    hints = {"token_type_hint": hint} if hint else {}
    _assert_revoked_answer(_revoke(client, granted, granted.tokens["access_token"], **hints))
    assert feed_status(client, granted.read_headers()) == 401
    renewed = refresh(client, granted.app, granted.tokens["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    assert feed_status(client, granted.read_headers(renewed.json()["access_token"])) == 200


def test_revoking_a_refresh_token_revokes_its_grant(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    granted = connect(client, db, tenant.business.id)
    second = refresh(client, granted.app, granted.tokens["refresh_token"]).json()
    _assert_revoked_answer(_revoke(client, granted, second["refresh_token"]))
    assert feed_status(client, granted.read_headers(second["access_token"])) == 401
    oauth_error(refresh(client, granted.app, second["refresh_token"]), 400, "invalid_grant")
    # Revoking again, or a token already spent, changes nothing and still answers 200.
    _assert_revoked_answer(_revoke(client, granted, second["refresh_token"]))
    _assert_revoked_answer(_revoke(client, granted, granted.tokens["refresh_token"]))


def test_revoking_a_spent_refresh_token_changes_nothing(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    """A rotated pair is no longer valid: revoking it is a no-op (RFC 7009 §2.2), and its
    successor lives on; only the token endpoint treats a spent refresh token as reuse."""
    granted = connect(client, db, tenant.business.id)
    first = granted.tokens
    second = refresh(client, granted.app, first["refresh_token"]).json()

    _assert_revoked_answer(_revoke(client, granted, first["refresh_token"]))
    _assert_revoked_answer(_revoke(client, granted, first["access_token"]))

    assert feed_status(client, granted.read_headers(second["access_token"])) == 200
    assert refresh(client, granted.app, second["refresh_token"]).status_code == 200


def test_unknown_and_other_clients_tokens_answer_200_and_change_nothing(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    granted = connect(client, db, tenant.business.id)
    other = connect(client, db, tenant.business.id, new_app(db, name="Other Loyalty"))
    _assert_revoked_answer(_revoke(client, granted, "cfa_not-a-token"))
    _assert_revoked_answer(_revoke(client, granted, other.tokens["refresh_token"]))
    _assert_revoked_answer(_revoke(client, granted, other.tokens["access_token"]))
    assert feed_status(client, other.read_headers()) == 200
    assert refresh(client, other.app, other.tokens["refresh_token"]).status_code == 200


def test_revocation_requires_the_client_and_a_token(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    granted = connect(client, db, tenant.business.id)
    token = granted.tokens["access_token"]
    response = client.post("/oauth/revoke", data={"token": token})
    oauth_error(response, 401, "invalid_client")
    wrong = (granted.app.client_id, "cfcs_wrong")
    oauth_error(
        client.post("/oauth/revoke", data={"token": token}, auth=wrong), 401, "invalid_client"
    )
    oauth_error(_revoke(client, granted, ""), 400, "invalid_request")
    assert feed_status(client, granted.read_headers()) == 200
    app = granted.app
    posted = {"token": token, "client_id": app.client_id, "client_secret": app.client_secret}
    _assert_revoked_answer(client.post("/oauth/revoke", data=posted))
    assert feed_status(client, granted.read_headers()) == 401


def test_revoking_the_connection_ends_its_tokens_at_once(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    granted = connect(client, db, tenant.business.id)
    kept = connect(client, db, tenant.business.id, new_app(db, name="Kept Loyalty"))
    with write_transaction(db) as conn:
        assert connections.revoke(
            conn, business_id=tenant.business.id, integrator_id=granted.app.id
        )
    assert feed_status(client, granted.read_headers()) == 401
    oauth_error(refresh(client, granted.app, granted.tokens["refresh_token"]), 400, "invalid_grant")
    assert feed_status(client, kept.read_headers()) == 200
    # Approving the app again connects it anew.
    again = connect(client, db, tenant.business.id, granted.app)
    assert feed_status(client, again.read_headers()) == 200


def test_the_metadata_document(client: httpx.Client, server: Server) -> None:
    response = client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    base = server.base_url
    assert document == {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "scopes_supported": [r.name for r in catalogue.RESOURCES],
        "service_documentation": f"{base}/docs",
    }
    AuthorizationServerMetadata(document).validate()
    # Without a configured public URL, the issuer follows the URL the server was reached by.
    host = {"Host": f"localhost:{server.port}"}
    by_name = client.get("/.well-known/oauth-authorization-server", headers=host).json()
    assert by_name["token_endpoint"] == f"http://localhost:{server.port}/oauth/token"


def test_the_metadata_names_the_configured_public_url(db: Engine, db_url: str) -> None:
    """Behind a proxy the Host header is the client's to choose; CLUBFEED_PUBLIC_URL is not.

    (A Host that is neither the public URL's nor allowed is refused: tests/test_edge_headers.py.)
    """
    public = "https://api.vendor.example"
    assert Settings.from_env({"CLUBFEED_PUBLIC_URL": public}).public_url == public
    assert Settings.from_env({}).public_url is None
    settings = Settings(database_url=db_url, public_url=public + "/")
    with Server(settings) as running, httpx.Client(base_url=running.base_url) as http:
        response = http.get(
            "/.well-known/oauth-authorization-server", headers={"Host": f"127.0.0.1:{running.port}"}
        )
    assert response.status_code == 200
    document = response.json()
    assert document["issuer"] == public
    assert document["authorization_endpoint"] == f"{public}/oauth/authorize"
    assert document["token_endpoint"] == f"{public}/oauth/token"
    assert document["revocation_endpoint"] == f"{public}/oauth/revoke"
    assert document["service_documentation"] == f"{public}/docs"
    AuthorizationServerMetadata(document).validate()


def test_the_endpoints_are_in_the_openapi_document_and_answer_as_it_says(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    # GET asks the admin; POST is the consent page's own form.
    assert set(paths["/oauth/authorize"]) == {"get", "head", "post"}
    consent = paths["/oauth/authorize"]["post"]
    assert set(consent["responses"]) == {"303", "400", "403", "503"}
    form = consent["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["required"] == ["decision", "csrf_token"]
    parameters = {p["name"] for p in paths["/oauth/authorize"]["get"]["parameters"]}
    assert {"client_id", "redirect_uri", "code_challenge", "code_challenge_method"} <= parameters
    token = paths["/oauth/token"]["post"]
    assert set(token["responses"]) == {"200", "400", "401", "429", "503"}
    assert "application/x-www-form-urlencoded" in token["requestBody"]["content"]
    assert set(paths["/oauth/revoke"]["post"]["responses"]) == {"200", "400", "401", "429", "503"}
    assert "200" in paths["/.well-known/oauth-authorization-server"]["get"]["responses"]

    def conforms(path: str, method: str, response: httpx.Response) -> None:
        described = paths[path][method]["responses"][str(response.status_code)]
        schema = described["content"][response.headers["content-type"]]["schema"]
        Draft202012Validator(schema).validate(response.json())

    granted = connect(client, db, tenant.business.id)
    app = granted.app
    tokens = refresh(client, app, granted.tokens["refresh_token"])
    conforms("/oauth/token", "post", tokens)
    conforms("/oauth/token", "post", refresh(client, app, "cfr_unknown"))
    conforms("/oauth/token", "post", client.post("/oauth/token", data={"grant_type": "x"}))
    conforms("/oauth/revoke", "post", _revoke(client, granted, tokens.json()["access_token"]))
    conforms(
        "/.well-known/oauth-authorization-server",
        "get",
        client.get("/.well-known/oauth-authorization-server"),
    )


def test_purging_forgets_only_dead_codes_and_token_pairs(
    client: httpx.Client, db: Engine, tenant: Tenant
) -> None:
    """The rotated-away pair goes (its reuse is then merely unknown); the live pair works on."""
    granted = connect(client, db, tenant.business.id)
    rotated = refresh(client, granted.app, granted.tokens["refresh_token"]).json()

    with write_transaction(db) as conn:
        # Every cutoff falls before the live pair's expiry, so only dead rows qualify.
        assert tokens.forget_spent(conn, 2**62) >= 2

    # Forgotten, the spent refresh token is unknown: refused, but no longer revoking the grant.
    oauth_error(refresh(client, granted.app, granted.tokens["refresh_token"]), 400, "invalid_grant")
    assert feed_status(client, granted.read_headers(rotated["access_token"])) == 200
    again = refresh(client, granted.app, rotated["refresh_token"])
    assert again.status_code == 200, again.text
