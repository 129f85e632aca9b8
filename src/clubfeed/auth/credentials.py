"""Credentials: generated with 256 bits of entropy, stored only as SHA-256 hashes.

A credential is looked up by its hash (the index makes that fast) and the stored
hash is compared again in constant time, so neither a database dump nor a timing
side channel gives a usable secret away.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import Connection, Table, insert, select, update

from clubfeed.feed import clock
from clubfeed.storage.schema import businesses, integrators
from clubfeed.timefmt import now_us

SHARED_SECRET_PREFIX = "cfs_"
INGEST_KEY_PREFIX = "cfi_"
INTEGRATOR_KEY_PREFIX = "cfk_"
CLIENT_ID_PREFIX = "cfid_"
CLIENT_SECRET_PREFIX = "cfcs_"


def new_token(prefix: str) -> str:
    """A fresh credential; the prefix tells a person (and secret scanners) what it is."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class NewBusiness:
    id: int
    name: str
    shared_secret: str
    ingest_key: str


@dataclass(frozen=True)
class NewIntegrator:
    """A registered integrator; `key` and `client_secret` are shown only at creation."""

    id: int
    name: str
    key: str
    client_id: str = ""
    client_secret: str = ""
    redirect_uris: tuple[str, ...] = field(default=())


def create_business(conn: Connection, name: str) -> NewBusiness:
    """Create a business with its change clock; the raw credentials are returned only here."""
    secret, ingest_key = new_token(SHARED_SECRET_PREFIX), new_token(INGEST_KEY_PREFIX)
    business_id: int = conn.execute(
        insert(businesses)
        .values(
            name=name,
            shared_secret_hash=token_hash(secret),
            ingest_key_hash=token_hash(ingest_key),
            created_at=now_us(),
        )
        .returning(businesses.c.id)
    ).scalar_one()
    clock.create(conn, business_id)
    return NewBusiness(business_id, name, secret, ingest_key)


def _rotate(conn: Connection, table: Table, row_id: int, column: str, prefix: str) -> str | None:
    """Store a fresh token's hash in `column` of row `row_id`; the new token, or None if no row."""
    token = new_token(prefix)
    result = conn.execute(
        update(table).where(table.c.id == row_id).values({column: token_hash(token)})
    )
    return token if result.rowcount == 1 else None


def rotate_shared_secret(conn: Connection, business_id: int) -> str | None:
    """Replace a business's shared secret (the old one stops working at once); None if no such business."""
    return _rotate(conn, businesses, business_id, "shared_secret_hash", SHARED_SECRET_PREFIX)


def rotate_ingest_key(conn: Connection, business_id: int) -> str | None:
    """Replace a business's ingest key (the old one stops working at once); None if no such business."""
    return _rotate(conn, businesses, business_id, "ingest_key_hash", INGEST_KEY_PREFIX)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redirect_uri_problem(uri: str) -> str | None:
    """Why `uri` cannot be registered as an OAuth redirect URI, or None.

    https only, except http on a loopback host for development (RFC 8252 §7.3);
    no fragment (RFC 6749 §3.1.2). Registered URIs are later matched exactly.
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        return f"{uri!r} is not a URL."
    if not parts.scheme or not parts.hostname:
        return f"{uri!r} is not an absolute URL."
    if parts.fragment or uri.endswith("#"):
        return f"{uri!r} has a fragment; redirect URIs may not."
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)):
        return None
    return f"{uri!r} must use https (http is allowed only on a loopback address)."


def create_integrator(
    conn: Connection, name: str, redirect_uris: tuple[str, ...] = ()
) -> NewIntegrator:
    """Register an integrator with its key and OAuth client credentials; ValueError for a bad URI."""
    for uri in redirect_uris:
        if (problem := redirect_uri_problem(uri)) is not None:
            raise ValueError(problem)
    key = new_token(INTEGRATOR_KEY_PREFIX)
    client_id = CLIENT_ID_PREFIX + secrets.token_urlsafe(16)
    client_secret = new_token(CLIENT_SECRET_PREFIX)
    integrator_id: int = conn.execute(
        insert(integrators)
        .values(
            name=name,
            key_hash=token_hash(key),
            created_at=now_us(),
            client_id=client_id,
            client_secret_hash=token_hash(client_secret),
            redirect_uris=json.dumps(list(redirect_uris)),
        )
        .returning(integrators.c.id)
    ).scalar_one()
    return NewIntegrator(integrator_id, name, key, client_id, client_secret, redirect_uris)


def rotate_integrator_key(conn: Connection, integrator_id: int) -> str | None:
    """Replace an integrator's key (the old one stops working at once); None if no such integrator."""
    return _rotate(conn, integrators, integrator_id, "key_hash", INTEGRATOR_KEY_PREFIX)


def set_oauth_client(
    conn: Connection, integrator_id: int, redirect_uris: tuple[str, ...]
) -> tuple[str, str]:
    """Give an integrator a client_id (if it has none), these redirect URIs and a fresh secret.

    Returns (client_id, client_secret); the old secret stops working at once. ValueError
    for a bad URI, LookupError if there is no such integrator.
    """
    for uri in redirect_uris:
        if (problem := redirect_uri_problem(uri)) is not None:
            raise ValueError(problem)
    row = conn.execute(
        select(integrators.c.client_id).where(integrators.c.id == integrator_id)
    ).first()
    if row is None:
        raise LookupError(f"There is no integrator {integrator_id}.")
    client_id: str = row.client_id or CLIENT_ID_PREFIX + secrets.token_urlsafe(16)
    client_secret = new_token(CLIENT_SECRET_PREFIX)
    conn.execute(
        update(integrators)
        .where(integrators.c.id == integrator_id)
        .values(
            client_id=client_id,
            client_secret_hash=token_hash(client_secret),
            redirect_uris=json.dumps(list(redirect_uris)),
        )
    )
    return client_id, client_secret


def _find(conn: Connection, id_column: object, hash_column: object, token: str) -> int | None:
    digest = token_hash(token)
    row = conn.execute(select(id_column, hash_column).where(hash_column == digest)).first()  # type: ignore[call-overload]
    if row is None or not hmac.compare_digest(row[1], digest):
        return None
    found: int = row[0]
    return found


def business_by_ingest_key(conn: Connection, key: str) -> int | None:
    return _find(conn, businesses.c.id, businesses.c.ingest_key_hash, key)


def integrator_by_key(conn: Connection, key: str) -> int | None:
    return _find(conn, integrators.c.id, integrators.c.key_hash, key)
