"""Who is asking: the credentials a request must carry, checked against their hashes.

Reads need two credentials: the integrator's own key (`X-Integrator-Key`) and,
as `Authorization: Bearer`, either the business's shared secret or an OAuth access
token the business granted to that same integrator. Writes need the business's
ingest key. Each kind works only where it belongs, so a leaked read credential
cannot write and an ingest key cannot read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection

from clubfeed import catalogue
from clubfeed.auth import connections, credentials, tokens
from clubfeed.errors import Forbidden, Unauthenticated

INTEGRATOR_HEADER = "x-integrator-key"


def _bearer(headers: Mapping[str, str], what: str) -> str:
    value = headers.get("authorization")
    if not value:
        raise Unauthenticated(
            f"Send the {what} as 'Authorization: Bearer <{what.replace(' ', '-')}>'.",
            rejected=False,
        )
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            f"The Authorization header must be 'Bearer <{what.replace(' ', '-')}>'.", rejected=True
        )
    return token.strip()


@dataclass(frozen=True)
class Reader:
    """An authenticated reader: which business, which integrator, how it got in, what it
    may read, and (with an access token) until when."""

    business_id: int
    integrator_id: int
    via: str
    resources: tuple[str, ...] = catalogue.NAMES
    expires_at_us: int | None = None


def reader(conn: Connection, headers: Mapping[str, str], resource: str | None) -> Reader:
    """Who may read `resource` (None: any, as /v1/me asks); Unauthenticated unless both
    credentials are right.

    An access token answers only with the key of the integrator it was issued to,
    only for the business that granted it, and only for the resources it covers.
    """
    integrator_key = headers.get(INTEGRATOR_HEADER)
    if not integrator_key:
        raise Unauthenticated(
            "Send your integrator key in the X-Integrator-Key header, beside the business's "
            "shared secret or your OAuth access token in 'Authorization: Bearer'.",
            rejected=False,
        )
    token = _bearer(headers, "shared secret or access token")
    integrator_id = credentials.integrator_by_key(conn, integrator_key)
    if integrator_id is None:
        raise Unauthenticated("The X-Integrator-Key is not a valid integrator key.", rejected=True)
    if token.startswith(tokens.ACCESS_PREFIX):
        return _token_reader(conn, token, integrator_id, resource)
    found = connections.shared_secret_reader(conn, token, integrator_id)
    if found is None:
        hint = (
            " That is an ingest key, which only writes; reads need the business's shared secret."
            if token.startswith(credentials.INGEST_KEY_PREFIX)
            else " It may have been rotated; ask the business for the current one."
        )
        raise Unauthenticated(
            "The bearer token is not a valid shared secret." + hint, rejected=True
        )
    business_id, revoked = found
    if revoked:
        raise Unauthenticated(
            "The business revoked this integrator's access; ask it to connect you again.",
            rejected=True,
        )
    return Reader(business_id, integrator_id, connections.VIA_SHARED_SECRET)


def _token_reader(conn: Connection, token: str, integrator_id: int, resource: str | None) -> Reader:
    access = tokens.find_access(conn, token)
    if access is None or access.grant.integrator_id != integrator_id:
        raise Unauthenticated(
            "The access token is not valid: it expired (refresh it), was revoked, or was "
            "issued to another integrator.",
            rejected=True,
        )
    granted = access.grant.scope.split()
    scope = tuple(name for name in catalogue.NAMES if name in granted)
    if resource is not None and resource not in scope:
        raise Forbidden(
            f"This access token may read {', '.join(scope)}, not {resource}; "
            "ask the business to approve a wider scope.",
            scope=resource,
        )
    return Reader(
        access.grant.business_id, integrator_id, connections.VIA_OAUTH, scope, access.expires_at
    )


def writer(conn: Connection, headers: Mapping[str, str]) -> int:
    """The business an ingest request writes to; Unauthenticated unless its ingest key is right."""
    key = _bearer(headers, "ingest key")
    business_id = credentials.business_by_ingest_key(conn, key)
    if business_id is None:
        hint = (
            " That is a shared secret, which only reads; writes need the business's ingest key."
            if key.startswith(credentials.SHARED_SECRET_PREFIX)
            else ""
        )
        raise Unauthenticated("The bearer token is not a valid ingest key." + hint, rejected=True)
    return business_id
