"""Credentials: generated with 256 bits of entropy, stored only as SHA-256 hashes.

A credential is looked up by its hash (the index makes that fast) and the stored
hash is compared again in constant time, so neither a database dump nor a timing
side channel gives a usable secret away. A rotated credential may keep working
beside its successor for an overlap, so that clients switch without an outage.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import (
    BindParameter,
    Column,
    ColumnElement,
    Connection,
    Select,
    Table,
    and_,
    bindparam,
    insert,
    or_,
    select,
    update,
)

from clubfeed.storage.fast import fetch_first
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


class DuplicateName(ValueError):
    """A business or integrator of that name exists already (and duplicates were not allowed)."""


def refuse_duplicate(conn: Connection, table: Table, what: str, name: str) -> None:
    """DuplicateName if a row of `table` (businesses or integrators) has exactly this name."""
    found = conn.execute(
        select(table.c.id).where(table.c.name == name).order_by(table.c.id).limit(1)
    ).scalar()
    if found is not None:
        raise DuplicateName(f"{what} {found} is named {name!r} already.")


@dataclass(frozen=True)
class CredentialKind:
    """Where one kind of credential lives: its hash, and its predecessor's hash and deadline."""

    table: Table
    column: str
    previous: str
    prefix: str

    def columns(self) -> tuple[Column[bytes], Column[bytes], Column[int]]:
        t = self.table.c
        return t[self.column], t[f"{self.previous}_hash"], t[f"{self.previous}_until"]


SHARED_SECRET = CredentialKind(
    businesses, "shared_secret_hash", "previous_shared_secret", SHARED_SECRET_PREFIX
)
INGEST_KEY = CredentialKind(businesses, "ingest_key_hash", "previous_ingest_key", INGEST_KEY_PREFIX)
INTEGRATOR_KEY = CredentialKind(integrators, "key_hash", "previous_key", INTEGRATOR_KEY_PREFIX)


def _rotate(
    conn: Connection, kind: CredentialKind, row_id: int, previous_until: int | None
) -> str | None:
    """Store a fresh token's hash for row `row_id`: the new token, or None if there is no row.

    With `previous_until` (µs) the current token keeps working until then; a previous
    token from an earlier rotation stops at once either way.
    """
    token = new_token(kind.prefix)
    current, previous, until = kind.columns()
    values: dict[str, object] = {
        current.name: token_hash(token),
        previous.name: None if previous_until is None else current,
        until.name: previous_until,
    }
    result = conn.execute(update(kind.table).where(kind.table.c.id == row_id).values(values))
    return token if result.rowcount == 1 else None


def rotate_shared_secret(
    conn: Connection, business_id: int, *, previous_until: int | None = None
) -> str | None:
    """Replace a business's shared secret; None if no such business."""
    return _rotate(conn, SHARED_SECRET, business_id, previous_until)


def rotate_ingest_key(
    conn: Connection, business_id: int, *, previous_until: int | None = None
) -> str | None:
    """Replace a business's ingest key; None if no such business."""
    return _rotate(conn, INGEST_KEY, business_id, previous_until)


def hash_matches(digest: bytes, row: Sequence[Any], now: int) -> bool:
    """Whether `digest` is the row's current hash, or its previous one still in its overlap.

    `row` ends with the kind's `columns()`; both hashes are compared in constant time.
    """
    current, previous, until = row[-3:]
    live_previous = previous is not None and until is not None and until > now
    return hmac.compare_digest(current, digest) or (
        live_previous and hmac.compare_digest(previous, digest)
    )


def matching(kind: CredentialKind) -> ColumnElement[bool]:
    """The WHERE clause finding the row whose current or live previous hash is `digest`.

    `digest` and `now` are bound at execution (`lookup_params`): a statement built once
    with it skips SQLAlchemy's construction and cache-key work on every request.
    """
    current, previous, until = kind.columns()
    digest: BindParameter[bytes] = bindparam("digest")
    now: BindParameter[int] = bindparam("now")
    return or_(current == digest, and_(previous == digest, until > now))


def lookup_params(digest: bytes, now: int) -> dict[str, object]:
    return {"digest": digest, "now": now}


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
    conn: Connection,
    name: str,
    redirect_uris: tuple[str, ...] = (),
    *,
    unique_name: bool = False,
) -> NewIntegrator:
    """Register an integrator with its key and OAuth client credentials.

    ValueError for a bad URI; with `unique_name`, DuplicateName if an integrator has
    this exact name.
    """
    for uri in redirect_uris:
        if (problem := redirect_uri_problem(uri)) is not None:
            raise ValueError(problem)
    if unique_name:
        refuse_duplicate(conn, integrators, "Integrator", name)
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


def rotate_integrator_key(
    conn: Connection, integrator_id: int, *, previous_until: int | None = None
) -> str | None:
    """Replace an integrator's key; None if no such integrator."""
    return _rotate(conn, INTEGRATOR_KEY, integrator_id, previous_until)


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


def _lookup(kind: CredentialKind) -> Select[Any]:
    return select(kind.table.c.id, *kind.columns()).where(matching(kind))


# Built once: these run on every /v1 request.
_BY_INGEST_KEY = _lookup(INGEST_KEY)
_BY_INTEGRATOR_KEY = _lookup(INTEGRATOR_KEY)


def _find(conn: Connection, statement: Select[Any], token: str) -> int | None:
    digest, now = token_hash(token), now_us()
    row = fetch_first(conn, statement, lookup_params(digest, now))
    if row is None or not hash_matches(digest, row, now):
        return None
    found: int = row[0]
    return found


def business_by_ingest_key(conn: Connection, key: str) -> int | None:
    return _find(conn, _BY_INGEST_KEY, key)


def integrator_by_key(conn: Connection, key: str) -> int | None:
    return _find(conn, _BY_INTEGRATOR_KEY, key)
