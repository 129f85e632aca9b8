"""Connections: which integrators may read a business, how they got in, and what they may read.

An integrator reaches a business through up to two channels, each a row: OAuth
(made by consent, covering the approved resources) and the shared secret (made by
the first read with it, covering everything). The business revokes either or both;
approving one channel never reopens the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, and_, bindparam, select, update

from clubfeed import catalogue
from clubfeed.auth import tokens
from clubfeed.auth.credentials import (
    SHARED_SECRET,
    hash_matches,
    lookup_params,
    matching,
    token_hash,
)
from clubfeed.storage.engine import dialect_insert
from clubfeed.storage.fast import fetch_first
from clubfeed.storage.schema import businesses, connections, integrators
from clubfeed.timefmt import now_us

VIA_OAUTH = "oauth"
VIA_SHARED_SECRET = "shared_secret"
ALL_RESOURCES = " ".join(catalogue.NAMES)
_KEY = ["business_id", "integrator_id", "via"]


@dataclass(frozen=True)
class ConnectionView:
    """One channel of a connected app, as the business sees it."""

    integrator_id: int
    integrator_name: str
    via: str
    scope: tuple[str, ...]
    created_at: int
    last_used_at: int | None
    revoked_at: int | None


def connect(conn: Connection, *, business_id: int, integrator_id: int, scope: str) -> None:
    """The business approved this integrator by OAuth (again): its OAuth channel, with `scope`.

    Only the OAuth channel changes: a shared-secret revocation stays in force.
    """
    stmt = dialect_insert(conn)(connections).values(
        business_id=business_id,
        integrator_id=integrator_id,
        via=VIA_OAUTH,
        scope=scope,
        created_at=now_us(),
    )
    conn.execute(
        stmt.on_conflict_do_update(index_elements=_KEY, set_={"scope": scope, "revoked_at": None})
    )


def note_use(conn: Connection, *, business_id: int, integrator_id: int, via: str, at: int) -> None:
    """A read through a channel: keep its last use current.

    A shared-secret channel is made by its first read; an OAuth one exists since consent.
    """
    if via != VIA_SHARED_SECRET:
        conn.execute(
            update(connections)
            .where(
                connections.c.business_id == business_id,
                connections.c.integrator_id == integrator_id,
                connections.c.via == via,
            )
            .values(last_used_at=at)
        )
        return
    stmt = dialect_insert(conn)(connections).values(
        business_id=business_id,
        integrator_id=integrator_id,
        via=via,
        scope=ALL_RESOURCES,
        created_at=at,
        last_used_at=at,
    )
    conn.execute(stmt.on_conflict_do_update(index_elements=_KEY, set_={"last_used_at": at}))


# Built once, with bound parameters: it runs on every shared-secret read.
_SHARED_SECRET_READER = (
    select(businesses.c.id, connections.c.revoked_at, *SHARED_SECRET.columns())
    .select_from(businesses)
    .outerjoin(
        connections,
        and_(
            connections.c.business_id == businesses.c.id,
            connections.c.integrator_id == bindparam("integrator_id"),
            connections.c.via == VIA_SHARED_SECRET,
        ),
    )
    .where(matching(SHARED_SECRET))
)


def shared_secret_reader(
    conn: Connection, secret: str, integrator_id: int
) -> tuple[int, bool] | None:
    """(business id, revoked) for a shared secret read by `integrator_id`; None if no such secret.

    One indexed lookup answers both: the hot path of every shared-secret read. A
    rotated secret answers until its overlap ends.
    """
    digest, now = token_hash(secret), now_us()
    params = {**lookup_params(digest, now), "integrator_id": integrator_id}
    row = fetch_first(conn, _SHARED_SECRET_READER, params)
    if row is None or not hash_matches(digest, row, now):
        return None
    business_id, revoked_at = row[:2]
    return business_id, revoked_at is not None


def revoke(
    conn: Connection, *, business_id: int, integrator_id: int, via: str | None = None
) -> bool:
    """Cut an integrator off (through one channel, or every one); False if nothing was live.

    Revoking the OAuth channel revokes its grants, so its tokens die at once.
    """
    where = [
        connections.c.business_id == business_id,
        connections.c.integrator_id == integrator_id,
        connections.c.revoked_at.is_(None),
    ]
    if via is not None:
        where.append(connections.c.via == via)
    changed = conn.execute(update(connections).where(*where).values(revoked_at=now_us())).rowcount
    if via in (None, VIA_OAUTH):
        tokens.revoke_grants_of(conn, business_id, integrator_id)
    return changed > 0


def allow_again(conn: Connection, *, business_id: int, integrator_id: int) -> bool:
    """Lift a revocation of the shared-secret channel (OAuth apps reconnect by consent)."""
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
