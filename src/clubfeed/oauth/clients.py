"""Integrators as OAuth clients: the registration Authlib asks about, read from `integrators`."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from clubfeed import catalogue
from clubfeed.auth.credentials import token_hash
from clubfeed.storage.schema import integrators

AUTH_METHODS = ("client_secret_basic", "client_secret_post")
GRANT_TYPES = ("authorization_code", "refresh_token")
SCOPES = catalogue.NAMES


def canonical_scope(scope: str | None) -> str | None:
    """`scope` as resource names in catalogue order, all of them if omitted; None if it names none."""
    if scope is None:
        return " ".join(SCOPES)
    asked = set(scope.split())
    if not asked:
        return None
    return " ".join(name for name in SCOPES if name in asked)


@dataclass(frozen=True)
class Client:
    """A registered integrator, in the shape of Authlib's ClientMixin.

    Confidential clients only: every token request authenticates with the secret,
    and PKCE is required on top. Redirect URIs match exactly, as registered.
    """

    integrator_id: int
    name: str
    client_id: str
    secret_hash: bytes | None = field(repr=False)
    redirect_uris: tuple[str, ...]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        """The redirect URI to use when a request names none: only an unambiguous one."""
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        return canonical_scope(scope)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret_hash is not None and hmac.compare_digest(
            token_hash(client_secret), self.secret_hash
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES


def find_client(conn: Connection, client_id: str) -> Client | None:
    row = conn.execute(
        select(
            integrators.c.id,
            integrators.c.name,
            integrators.c.client_id,
            integrators.c.client_secret_hash,
            integrators.c.redirect_uris,
        ).where(integrators.c.client_id == client_id)
    ).first()
    if row is None:
        return None
    uris = tuple(json.loads(row.redirect_uris))
    return Client(row.id, row.name, row.client_id, row.client_secret_hash, uris)
