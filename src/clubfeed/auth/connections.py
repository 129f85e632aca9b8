"""Connections: which integrators may read a business, how they got in, and what they may read.

A connection is made by OAuth consent, or the first time an integrator reads with
the business's shared secret. The business can revoke it: the integrator's tokens
die and its shared-secret reads are refused until the business allows it again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from clubfeed import catalogue
from clubfeed.auth import tokens
from clubfeed.storage.engine import is_sqlite
from clubfeed.storage.schema import connections, integrators
from clubfeed.timefmt import now_us

VIA_OAUTH = "oauth"
VIA_SHARED_SECRET = "shared_secret"
ALL_RESOURCES = " ".join(r.name for r in catalogue.RESOURCES)


@dataclass(frozen=True)
class ConnectionView:
    """One connected app as the business sees it."""

    integrator_id: int
    integrator_name: str
    via: str
    scope: tuple[str, ...]
    created_at: int
    last_used_at: int | None
    revoked_at: int | None


def connect(
    conn: Connection, *, business_id: int, integrator_id: int, via: str, scope: str
) -> None:
    """Record that the business let this integrator in (again), `via` OAuth or shared secret."""
    dialect_insert = sqlite.insert if is_sqlite(conn) else postgresql.insert
    stmt = dialect_insert(connections).values(
        business_id=business_id,
        integrator_id=integrator_id,
        via=via,
        scope=scope,
        created_at=now_us(),
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["business_id", "integrator_id"],
            set_={"via": via, "scope": scope, "revoked_at": None},
        )
    )


def note_shared_secret_use(
    conn: Connection, *, business_id: int, integrator_id: int, at: int
) -> None:
    """A shared-secret read: create its connection on first use, and keep last use current."""
    dialect_insert = sqlite.insert if is_sqlite(conn) else postgresql.insert
    stmt = dialect_insert(connections).values(
        business_id=business_id,
        integrator_id=integrator_id,
        via=VIA_SHARED_SECRET,
        scope=ALL_RESOURCES,
        created_at=at,
        last_used_at=at,
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["business_id", "integrator_id"], set_={"last_used_at": at}
        )
    )


def note_use(conn: Connection, *, business_id: int, integrator_id: int, at: int) -> None:
    conn.execute(
        update(connections)
        .where(
            connections.c.business_id == business_id, connections.c.integrator_id == integrator_id
        )
        .values(last_used_at=at)
    )


def is_revoked(conn: Connection, business_id: int, integrator_id: int) -> bool:
    revoked_at = conn.execute(
        select(connections.c.revoked_at).where(
            connections.c.business_id == business_id, connections.c.integrator_id == integrator_id
        )
    ).scalar()
    return revoked_at is not None


def revoke(conn: Connection, *, business_id: int, integrator_id: int) -> bool:
    """Cut an integrator off; its OAuth tokens die at once. False if it was not connected."""
    changed = conn.execute(
        update(connections)
        .where(
            connections.c.business_id == business_id,
            connections.c.integrator_id == integrator_id,
            connections.c.revoked_at.is_(None),
        )
        .values(revoked_at=now_us())
    ).rowcount
    tokens.revoke_grants_of(conn, business_id, integrator_id)
    return changed == 1


def allow_again(conn: Connection, *, business_id: int, integrator_id: int) -> bool:
    """Lift a revocation of a shared-secret connection (OAuth apps reconnect by consent)."""
    changed = conn.execute(
        update(connections)
        .where(
            connections.c.business_id == business_id,
            connections.c.integrator_id == integrator_id,
            connections.c.via == VIA_SHARED_SECRET,
            connections.c.revoked_at.is_not(None),
        )
        .values(revoked_at=None)
    ).rowcount
    return changed == 1


def of_business(conn: Connection, business_id: int) -> list[ConnectionView]:
    """Every app connected to the business, revoked ones included, most recently used first."""
    rows = conn.execute(
        select(
            connections.c.integrator_id,
            integrators.c.name,
            connections.c.via,
            connections.c.scope,
            connections.c.created_at,
            connections.c.last_used_at,
            connections.c.revoked_at,
        )
        .join(integrators, integrators.c.id == connections.c.integrator_id)
        .where(connections.c.business_id == business_id)
        .order_by(connections.c.last_used_at.desc().nulls_last(), integrators.c.name)
    )
    return [
        ConnectionView(
            r.integrator_id,
            r.name,
            r.via,
            tuple(r.scope.split()),
            r.created_at,
            r.last_used_at,
            r.revoked_at,
        )
        for r in rows
    ]
