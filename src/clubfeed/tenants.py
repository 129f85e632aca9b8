"""Businesses and integrators as the features see them: creating, finding and naming them.

A business is a tenant: every record, credential and change clock belongs to one.
The CLI, the console, the demo, the NDJSON import and sources create and find them
here rather than each with its own query.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from clubfeed.auth.credentials import (
    INGEST_KEY_PREFIX,
    SHARED_SECRET_PREFIX,
    NewBusiness,
    new_token,
    refuse_duplicate,
    token_hash,
)
from clubfeed.feed import clock
from clubfeed.storage.schema import businesses, integrators
from clubfeed.timefmt import now_us


@dataclass(frozen=True)
class Business:
    id: int
    name: str
    created_at_us: int


def create_business(conn: Connection, name: str, *, unique_name: bool = False) -> NewBusiness:
    """Create a business with its change clock; the raw credentials are returned only here.

    With `unique_name`, DuplicateName if a business has this exact name.
    """
    if unique_name:
        refuse_duplicate(conn, businesses, "Business", name)
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


def exists(conn: Connection, business_id: int) -> bool:
    return (
        conn.execute(select(businesses.c.id).where(businesses.c.id == business_id)).first()
        is not None
    )


def business_ids(conn: Connection, *, only: int | None = None) -> list[int]:
    """Every business's id in order, or just `only` if that business exists (else none)."""
    query = select(businesses.c.id).order_by(businesses.c.id)
    if only is not None:
        query = query.where(businesses.c.id == only)
    return list(conn.execute(query).scalars())


def _businesses(conn: Connection, names: Collection[str] | None) -> list[Business]:
    query = select(businesses.c.id, businesses.c.name, businesses.c.created_at)
    if names is not None:
        query = query.where(businesses.c.name.in_(names))
    return [Business(*row) for row in conn.execute(query.order_by(businesses.c.id))]


def all_businesses(conn: Connection) -> list[Business]:
    """Every business, oldest first."""
    return _businesses(conn, None)


def named(conn: Connection, names: Collection[str]) -> list[Business]:
    """The businesses with any of these exact names, oldest first (names need not be unique)."""
    return _businesses(conn, names)


def business_name(conn: Connection, *, business_id: int) -> str | None:
    """The business's display name, or None if there is no such business."""
    name: str | None = conn.execute(
        select(businesses.c.name).where(businesses.c.id == business_id)
    ).scalar()
    return name


def integrator_name(conn: Connection, *, integrator_id: int) -> str | None:
    """The integrator's name, or None if there is no such integrator."""
    name: str | None = conn.execute(
        select(integrators.c.name).where(integrators.c.id == integrator_id)
    ).scalar()
    return name
