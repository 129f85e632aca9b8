"""Credentials: generated with 256 bits of entropy, stored only as SHA-256 hashes.

A credential is looked up by its hash (the index makes that fast) and the stored
hash is compared again in constant time, so neither a database dump nor a timing
side channel gives a usable secret away.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, Table, insert, select, update

from clubfeed.feed import clock
from clubfeed.storage.schema import businesses, integrators
from clubfeed.timefmt import now_us

SHARED_SECRET_PREFIX = "cfs_"
INGEST_KEY_PREFIX = "cfi_"
INTEGRATOR_KEY_PREFIX = "cfk_"


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
    id: int
    name: str
    key: str


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


def create_integrator(conn: Connection, name: str) -> NewIntegrator:
    key = new_token(INTEGRATOR_KEY_PREFIX)
    integrator_id: int = conn.execute(
        insert(integrators)
        .values(name=name, key_hash=token_hash(key), created_at=now_us())
        .returning(integrators.c.id)
    ).scalar_one()
    return NewIntegrator(integrator_id, name, key)


def rotate_integrator_key(conn: Connection, integrator_id: int) -> str | None:
    """Replace an integrator's key (the old one stops working at once); None if no such integrator."""
    return _rotate(conn, integrators, integrator_id, "key_hash", INTEGRATOR_KEY_PREFIX)


def _find(conn: Connection, id_column: object, hash_column: object, token: str) -> int | None:
    digest = token_hash(token)
    row = conn.execute(select(id_column, hash_column).where(hash_column == digest)).first()  # type: ignore[call-overload]
    if row is None or not hmac.compare_digest(row[1], digest):
        return None
    found: int = row[0]
    return found


def business_by_shared_secret(conn: Connection, secret: str) -> int | None:
    return _find(conn, businesses.c.id, businesses.c.shared_secret_hash, secret)


def business_by_ingest_key(conn: Connection, key: str) -> int | None:
    return _find(conn, businesses.c.id, businesses.c.ingest_key_hash, key)


def integrator_by_key(conn: Connection, key: str) -> int | None:
    return _find(conn, integrators.c.id, integrators.c.key_hash, key)
