"""Who is asking: the credentials a request must carry, checked against their hashes.

Reads need two credentials, the integrator's own key (`X-Integrator-Key`) and the
business's shared secret (`Authorization: Bearer`); writes need the business's
ingest key. Each kind works only where it belongs, so a leaked read credential
cannot write and an ingest key cannot read.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection

from clubfeed.auth import credentials
from clubfeed.errors import Unauthenticated

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


def reader(conn: Connection, headers: Mapping[str, str]) -> int:
    """The business a read request may see; Unauthenticated unless both credentials are right."""
    integrator_key = headers.get(INTEGRATOR_HEADER)
    if not integrator_key:
        raise Unauthenticated(
            "Send your integrator key in the X-Integrator-Key header, beside the business's "
            "shared secret in 'Authorization: Bearer'.",
            rejected=False,
        )
    secret = _bearer(headers, "shared secret")
    if credentials.integrator_by_key(conn, integrator_key) is None:
        raise Unauthenticated("The X-Integrator-Key is not a valid integrator key.", rejected=True)
    business_id = credentials.business_by_shared_secret(conn, secret)
    if business_id is None:
        hint = (
            " That is an ingest key, which only writes; reads need the business's shared secret."
            if secret.startswith(credentials.INGEST_KEY_PREFIX)
            else " It may have been rotated; ask the business for the current one."
        )
        raise Unauthenticated(
            "The bearer token is not a valid shared secret." + hint, rejected=True
        )
    return business_id


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
