"""Console sessions: a random cookie token (stored hashed) and the session's CSRF token.

Sessions live in the database so that logout ends them everywhere and any API
process can serve any request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select

from clubfeed.auth.admins import Admin
from clubfeed.auth.credentials import token_hash
from clubfeed.storage.schema import admin_sessions, admins
from clubfeed.timefmt import now_us

COOKIE = "clubfeed_session"


@dataclass(frozen=True)
class Session:
    admin: Admin
    csrf_token: str


def start(conn: Connection, admin: Admin, ttl_s: int) -> str:
    """A new session for `admin`; returns the cookie value (shown only now)."""
    token = secrets.token_urlsafe(32)
    now = now_us()
    conn.execute(
        insert(admin_sessions).values(
            token_hash=token_hash(token),
            admin_id=admin.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + ttl_s * 1_000_000,
        )
    )
    return token


def find(conn: Connection, token: str | None) -> Session | None:
    """The live session of this cookie value, or None."""
    if not token:
        return None
    row = conn.execute(
        select(admins.c.id, admins.c.business_id, admins.c.email, admin_sessions.c.csrf_token)
        .join(admins, admins.c.id == admin_sessions.c.admin_id)
        .where(
            admin_sessions.c.token_hash == token_hash(token), admin_sessions.c.expires_at > now_us()
        )
    ).first()
    if row is None:
        return None
    return Session(Admin(row.id, row.business_id, row.email), row.csrf_token)


def end(conn: Connection, token: str) -> None:
    conn.execute(delete(admin_sessions).where(admin_sessions.c.token_hash == token_hash(token)))


def forget_expired(conn: Connection) -> int:
    """Delete sessions past their expiry (`find` ignores them, but nothing else removes them)."""
    return conn.execute(
        delete(admin_sessions).where(admin_sessions.c.expires_at <= now_us())
    ).rowcount
