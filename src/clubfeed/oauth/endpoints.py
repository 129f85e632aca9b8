"""The token and revocation endpoints: strict parameters and a rate limit, then Authlib.

Both authenticate the client, so both share one limit: a request carrying a
client's right credentials counts against that client, any other counts against
its IP address. Guessing secrets is throttled per address, and nobody can use up
a real client's allowance by sending its (public) client_id with a wrong secret.
"""

from __future__ import annotations

from collections.abc import Callable

from authlib.oauth2.rfc6749 import OAuth2Error
from sqlalchemy import Engine

from clubfeed.oauth.requests import (
    Incoming,
    OAuthRequest,
    basic_credentials,
    repeated,
    well_formed_basic,
)
from clubfeed.oauth.server import AuthServer, Reply, error_reply
from clubfeed.settings import Settings
from clubfeed.storage.engine import read_connection, write_transaction
from clubfeed.web.ratelimit import Limit

Respond = Callable[[AuthServer, OAuthRequest], Reply]


Handler = Callable[[Engine, Settings, Limit, Incoming], Reply]
"""The shape of a client-authenticated endpoint, as the routes call it."""


def token(engine: Engine, settings: Settings, limit: Limit, incoming: Incoming) -> Reply:
    """POST /oauth/token: exchange a code, or rotate a refresh token (RFC 6749 §4.1.3, §6)."""
    return _client_request(
        engine,
        settings,
        limit,
        incoming,
        lambda server, request: server.create_token_response(request),
    )


def revoke(engine: Engine, settings: Settings, limit: Limit, incoming: Incoming) -> Reply:
    """POST /oauth/revoke (RFC 7009)."""
    return _client_request(
        engine,
        settings,
        limit,
        incoming,
        lambda server, request: server.create_endpoint_response("revocation", request),
    )


def _malformed(incoming: Incoming) -> Reply | None:
    """Refuse what RFC 6749 forbids, and Basic credentials Authlib cannot decode, before
    anyone looks at a credential (the read and the write path then decode them safely)."""
    if incoming.query:
        # §2.3.1: client credentials must not travel in the URL, where logs keep them.
        return error_reply(
            400, "invalid_request", "Send the parameters in the request body, never in the URL."
        )
    if not incoming.form_ok:
        return error_reply(
            400, "invalid_request", "Send the parameters as application/x-www-form-urlencoded."
        )
    if (name := repeated(incoming.form)) is not None:
        named = name if name.isascii() and name.replace("_", "").isalnum() else "A parameter"
        return error_reply(400, "invalid_request", f"{named} was sent more than once.")
    basic = basic_credentials(incoming.headers)
    if basic is not None and not well_formed_basic(basic):
        # §5.2: a client that tried HTTP authentication gets a 401 naming the scheme.
        return error_reply(
            401,
            "invalid_client",
            "HTTP Basic credentials must be the base64 of client_id:client_secret in UTF-8.",
            {"WWW-Authenticate": 'Basic realm="clubfeed", error="invalid_client"'},
        )
    if basic is not None and any(key == "client_secret" for key, _ in incoming.form):
        return error_reply(
            400,
            "invalid_request",
            "Authenticate with HTTP Basic or with client_secret in the body, not both.",
        )
    return None


def _client_request(
    engine: Engine, settings: Settings, limit: Limit, incoming: Incoming, respond: Respond
) -> Reply:
    if (refusal := _malformed(incoming)) is not None:
        return refusal
    try:
        request = OAuthRequest(incoming, incoming.form)
    except OAuth2Error as error:
        return error_reply(error.status_code, error.error, error.description)
    # Which allowance the request uses is decided on a read connection, so requests
    # turned away never wait for (or hold) the write lock.
    with read_connection(engine) as conn:
        client = AuthServer(conn, settings).authenticated_client(request)
    wait = limit.hit(f"client:{client.client_id}" if client else f"ip:{incoming.client_ip}")
    if wait is not None:
        return error_reply(
            429,
            "slow_down",
            f"Too many requests; try again in {wait} seconds.",
            {"Retry-After": str(wait)},
        )
    with write_transaction(engine) as conn:
        return respond(AuthServer(conn, settings), OAuthRequest(incoming, incoming.form))
