"""Authlib's AuthorizationServer, built for one request on that request's database connection.

Authlib asks for clients (`query_client`) without handing over the request, so
the connection rides on the server: each request gets its own, which costs a few
registrations and keeps every step of a request in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnsupportedResponseTypeError,
)
from sqlalchemy import Connection

from clubfeed import tenants
from clubfeed.auth import tokens
from clubfeed.oauth.clients import AUTH_METHODS, GRANT_TYPES, SCOPES, Client, find_client
from clubfeed.oauth.grants import (
    CodeGrant,
    RefreshGrant,
    Revocation,
    S256Challenge,
    redirect_uri_for,
)
from clubfeed.oauth.requests import OAuthRequest
from clubfeed.settings import Settings
from clubfeed.timefmt import now_us

JSON_HEADERS: dict[str, str] = dict(default_json_headers)  # with Cache-Control: no-store


@dataclass(frozen=True)
class Reply:
    """An OAuth response: a JSON body, or a redirect (Location, empty body; sent as a 303)."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str]


def error_reply(
    status: int, error: str, description: str, headers: Mapping[str, str] | None = None
) -> Reply:
    """An RFC 6749 §5.2 error body, uncacheable like every token endpoint response."""
    body = {"error": error, "error_description": description}
    return Reply(status, body, {**JSON_HEADERS, **(headers or {})})


_DESCRIPTIONS = {
    "invalid_request": "The request is malformed: check its parameters against RFC 6749.",
    "invalid_client": (
        "The client could not be authenticated: send its client_id and client_secret by "
        "HTTP Basic or in the form."
    ),
    "invalid_grant": (
        "The code or refresh token is not valid for this client; start the authorization "
        "again if it keeps failing."
    ),
    "unauthorized_client": "This client may not use that grant type.",
    "unsupported_grant_type": "grant_type must be authorization_code or refresh_token.",
    "invalid_scope": "The scope asks for more than the business granted this app.",
}


class TokenBody(dict[str, Any]):
    """A token response. Authlib logs it with %r at DEBUG, so its repr names no token."""

    def __repr__(self) -> str:
        return f"<token response: {', '.join(self)}>"


class AuthServer(AuthorizationServer):
    """The authorization-code grant with S256 PKCE, rotating refresh tokens and RFC 7009 revocation."""

    def __init__(self, conn: Connection, settings: Settings) -> None:
        super().__init__()
        self.conn = conn
        self.settings = settings
        self.register_token_generator("default", self._bearer)
        self.register_grant(CodeGrant, [S256Challenge()])
        self.register_grant(RefreshGrant)
        self.register_endpoint(Revocation)

    def query_client(self, client_id: str) -> Client | None:
        return find_client(self.conn, client_id)

    def authenticated_client(self, request: OAuthRequest) -> Client | None:
        """The client whose credentials the request carries, or None if they are missing or wrong."""
        try:
            client: Client = self.authenticate_client(request, list(AUTH_METHODS))
        except OAuth2Error:
            return None
        return client

    def _bearer(
        self,
        grant_type: str,
        client: Client,
        user: tokens.Grant,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> TokenBody:
        """A token pair for the grant. A refresh asking for less than the grant still gets the
        grant's scope, and the response says so (RFC 6749 §5.1 lets the server choose)."""
        access, refresh = tokens.new_token_pair()
        return self._body(user, access, refresh, self.settings.access_token_ttl_s)

    def replayed(self, pair: tokens.Pair) -> TokenBody:
        """The pair a refresh already produced, as its response said (expires_in as now left)."""
        left_s = max(0, (pair.access_expires_at - now_us()) // 1_000_000)
        return self._body(pair.record.grant, pair.access_token, pair.refresh_token, left_s)

    def _body(self, grant: tokens.Grant, access: str, refresh: str, expires_in: int) -> TokenBody:
        """A token response, naming the business that granted it (so one client serving many
        gyms knows which this token reads)."""
        return TokenBody(
            access_token=access,
            token_type="Bearer",
            expires_in=expires_in,
            refresh_token=refresh,
            scope=grant.scope,
            business_id=grant.business_id,
            business_name=tenants.business_name(self.conn, business_id=grant.business_id),
        )

    def save_token(self, token: TokenBody, request: OAuthRequest) -> None:
        tokens.store_tokens(
            self.conn,
            request.user,
            access_token=token["access_token"],
            refresh_token=token["refresh_token"],
            ttl_s=self.settings.access_token_ttl_s,
        )

    def validate_requested_scope(self, scope: str | None) -> None:
        """The one scope check (Authlib's, fed scopes_supported, would only say "invalid"): unknown
        names are refused here, naming the valid ones; a scope naming nothing, by
        `Client.get_allowed_scope`."""
        if scope is not None and not set(scope.split()) <= set(SCOPES):
            raise InvalidScopeError(
                "scope must be resource names separated by spaces, from: " + " ".join(SCOPES)
            )

    def get_authorization_grant(self, request: OAuthRequest) -> CodeGrant:
        """Authlib's, except that the error never quotes the request's response_type (Authlib
        raises ValueError instead of an OAuth error when that holds a quote or backslash)."""
        if request.payload.response_type != "code":
            raise UnsupportedResponseTypeError(
                request.payload.response_type,
                "response_type must be code.",
                redirect_uri=self._error_redirect(request),
            )
        grant: CodeGrant = super().get_authorization_grant(request)
        return grant

    def _error_redirect(self, request: OAuthRequest) -> str | None:
        """Where an error may be sent: only a registered redirect URI of a known client (§4.1.2.1)."""
        client_id = request.payload.client_id
        client = self.query_client(client_id) if client_id else None
        if client is None:
            return None
        try:
            return redirect_uri_for(request, client)
        except InvalidRequestError:
            return None

    def create_oauth2_request(self, request: OAuthRequest) -> OAuthRequest:
        """Requests arrive already adapted (see `requests.OAuthRequest`)."""
        return request

    def handle_error_response(self, request: OAuthRequest | None, error: OAuth2Error) -> Reply:
        """Every error says what to do: Authlib leaves some without an error_description."""
        if not error.description:
            error.description = _DESCRIPTIONS.get(error.error, _DESCRIPTIONS["invalid_request"])
        reply: Reply = super().handle_error_response(request, error)
        return reply

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Reply:
        return Reply(status, body or {}, dict(headers))

    def send_signal(self, name: str, *args: object, **kwargs: object) -> None:
        """Authlib announces client authentication and revocation; nothing here listens."""


def metadata(issuer: str) -> dict[str, Any]:
    """The RFC 8414 authorization server metadata of the server at `issuer`."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "scopes_supported": list(SCOPES),
        "service_documentation": f"{issuer}/docs",
    }
