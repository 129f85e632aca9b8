"""Authlib's authorization-code and refresh-token grants, PKCE and revocation, over `auth.tokens`.

Only what Authlib leaves to the application is written here: where codes and
tokens are kept, and the stricter rules clubfeed adds (S256 PKCE for every client,
codes and refresh tokens spent only once a request has passed every check).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, grants
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge

from clubfeed.auth import connections, tokens
from clubfeed.auth.admins import Admin
from clubfeed.oauth.clients import AUTH_METHODS, Client
from clubfeed.oauth.requests import OAuthRequest

if TYPE_CHECKING:
    from clubfeed.oauth.server import AuthServer, TokenBody


@dataclass(frozen=True)
class IssuedCode:
    """A live authorization code as Authlib's AuthorizationCodeMixin."""

    code: tokens.Code

    @property
    def code_challenge(self) -> str:
        return self.code.code_challenge

    def get_redirect_uri(self) -> str:
        return self.code.redirect_uri

    def get_scope(self) -> str:
        return self.code.grant.scope


@dataclass(frozen=True)
class IssuedToken:
    """A token pair found by its refresh token (or, for revocation, by either).

    `replay` is set when the refresh token was presented again within the grace
    window: the pair its first use produced, to be handed out again.
    """

    record: tokens.TokenRecord
    is_refresh: bool = True
    replay: tokens.Pair | None = None

    def check_client(self, client: Client) -> bool:
        return self.record.grant.integrator_id == client.integrator_id

    def get_scope(self) -> str:
        return self.record.grant.scope


class S256Challenge(CodeChallenge):
    """PKCE required of every client, with S256 only.

    Authlib's CodeChallenge requires PKCE only of public clients and accepts
    "plain" (its default when no method is sent); both are refused here. Every
    code then has a challenge, and Authlib requires the verifier of any such code.
    """

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    CODE_CHALLENGE_METHODS: ClassVar[dict[str, Callable[[str, str], bool]]] = {
        "S256": compare_s256_code_challenge
    }

    def validate_code_challenge(self, grant: CodeGrant, redirect_uri: str | None) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge (RFC 7636).")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge_method(self, authorization_code: IssuedCode) -> str:
        return "S256"


def redirect_uri_for(request: OAuthRequest, client: Client) -> str:
    """The validated redirect URI of an authorization request (RFC 6749 §3.1.2.3).

    Authlib's own check quotes the request's URI in its error, and raises ValueError
    instead when the URI holds a quote or backslash; these messages quote nothing.
    """
    requested = request.payload.redirect_uri
    if requested is None:
        default = client.get_default_redirect_uri()
        if default is None:
            raise InvalidRequestError(
                "Send redirect_uri: this client registered several, so none is implied."
            )
        return default
    if not client.check_redirect_uri(requested):
        raise InvalidRequestError(
            "redirect_uri is not registered for this client; it must match a registered "
            "URI exactly (scheme, host, port, path, query and trailing slash)."
        )
    return str(requested)


class CodeGrant(grants.AuthorizationCodeGrant):
    """The authorization-code grant: codes live in `oauth_codes`, bound to client, redirect URI and PKCE challenge."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(AUTH_METHODS)
    server: AuthServer
    request: OAuthRequest

    @staticmethod
    def validate_authorization_redirect_uri(request: OAuthRequest, client: Client) -> str:
        return redirect_uri_for(request, client)

    def generate_authorization_code(self) -> str:
        return tokens.new_code()

    def save_authorization_code(self, code: str, request: OAuthRequest) -> None:
        """The admin approved: record the grant and its code, and connect the app to the business.

        The new consent replaces any earlier one: the business agreed to this scope, so
        tokens from a wider, older approval must not outlive it.
        """
        admin: Admin = request.user
        client: Client = request.client
        tokens.revoke_grants_of(self.server.conn, admin.business_id, client.integrator_id)
        grant = tokens.create_grant(
            self.server.conn,
            business_id=admin.business_id,
            integrator_id=client.integrator_id,
            admin_id=admin.id,
            scope=request.scope,
        )
        tokens.store_code(
            self.server.conn,
            grant,
            code,
            redirect_uri=request.payload.redirect_uri or "",
            code_challenge=request.payload.data["code_challenge"],
            ttl_s=self.server.settings.authorization_code_ttl_s,
        )
        connections.connect(
            self.server.conn,
            business_id=admin.business_id,
            integrator_id=client.integrator_id,
            scope=request.scope,
        )

    def query_authorization_code(self, code: str, client: Client) -> IssuedCode:
        try:
            found = tokens.find_code(
                self.server.conn,
                code,
                client.integrator_id,
                ttl_s=self.server.settings.authorization_code_ttl_s,
            )
        except tokens.Refused as refused:
            raise InvalidGrantError(str(refused)) from None
        return IssuedCode(found)

    def authenticate_user(self, authorization_code: IssuedCode) -> tokens.Grant:
        """The "user" a token speaks for is the grant: a business's approval for one integrator."""
        return authorization_code.code.grant

    def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
        """Spend the code now that the request passed every check (tokens are saved, not yet sent)."""
        if not tokens.spend_code(self.server.conn, authorization_code.code):
            raise InvalidGrantError(
                "This authorization code was already used, so the tokens it gave were revoked "
                "for safety; send the admin through /oauth/authorize again."
            )


class RefreshGrant(grants.RefreshTokenGrant):
    """Refresh tokens rotate on every use; a spent one presented again revokes its grant,
    unless its own client presents it within the grace window (`auth/tokens.py`)."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(AUTH_METHODS)
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: AuthServer
    request: OAuthRequest

    def _find(self, refresh_token: str) -> IssuedToken:
        client: Client = self.request.client
        grace_s = self.server.settings.refresh_grace_s
        try:
            found = tokens.find_refresh(
                self.server.conn, refresh_token, client.integrator_id, grace_s=grace_s
            )
        except tokens.Refused as refused:
            raise InvalidGrantError(str(refused)) from None
        if isinstance(found, tokens.Pair):
            return IssuedToken(found.record, replay=found)
        return IssuedToken(found)

    def authenticate_refresh_token(self, refresh_token: str) -> IssuedToken:
        return self._find(refresh_token)

    def authenticate_user(self, refresh_token: IssuedToken) -> tokens.Grant:
        return refresh_token.record.grant

    def create_token_response(self) -> tuple[int, TokenBody, list[tuple[str, str]]]:
        """A new pair for a live refresh token, spent before the pair is saved; the same
        pair again for one presented twice within the grace window, even by a request
        that raced the first and lost."""
        issued: IssuedToken = self.request.refresh_token
        if issued.replay is None:
            presented: str = self.request.form["refresh_token"]
            user = self.authenticate_user(issued)
            token = self.issue_token(user, issued)
            self.request.user = user
            successor = (token["access_token"], token["refresh_token"])
            if tokens.spend_refresh(self.server.conn, issued.record, presented, successor):
                self.save_token(token)
                return 200, token, self.TOKEN_RESPONSE_HEADER
            issued = self._find(presented)
        assert issued.replay is not None, "a refresh token lost its race but is still live"
        return 200, self.server.replayed(issued.replay), self.TOKEN_RESPONSE_HEADER


class Revocation(RevocationEndpoint):
    """RFC 7009: a refresh token revokes its whole grant, an access token ends at once.

    A token the client does not hold is treated as unknown (200, nothing revoked),
    so one client learns nothing about another's tokens.
    """

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = list(AUTH_METHODS)
    server: AuthServer

    def check_params(self, request: OAuthRequest, client: Client) -> None:
        """The token is required. token_type_hint is ignored, as RFC 7009 §2.1 allows: both
        kinds are looked up anyway (Authlib would answer an unknown hint with a 401)."""
        if "token" not in request.form:
            raise InvalidRequestError("Send the token to revoke.")

    def authenticate_token(self, request: OAuthRequest, client: Client) -> IssuedToken | None:
        self.check_params(request, client)
        found = tokens.find_for_revocation(
            self.server.conn, request.form["token"], client.integrator_id
        )
        return None if found is None else IssuedToken(found.record, found.is_refresh)

    def revoke_token(self, token: IssuedToken, request: Any) -> None:
        if token.is_refresh:
            tokens.revoke_grant(self.server.conn, token.record.grant.id)
        else:
            tokens.end_access(self.server.conn, token.record.id)
