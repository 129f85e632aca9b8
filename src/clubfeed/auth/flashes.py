"""Flashes: what the page after a console form says once, the new shared secret included.

A form answers with a redirect, so a reload repeats only the GET, and what that GET
must show waits here. Any API process may serve the GET (they share only the
database), so the message is a row; it is sealed with AES-GCM under a key derived
from the session's cookie token, which the database holds only as a SHA-256 hash.
A database dump therefore never holds a usable secret, and taking a flash deletes
its row in the same statement that reads it, so it is shown at most once.
"""

from __future__ import annotations

import msgspec
from sqlalchemy import Connection, delete, insert

from clubfeed.auth.credentials import token_hash
from clubfeed.auth.sealing import Sealer
from clubfeed.storage.schema import console_flashes
from clubfeed.timefmt import now_us

TTL_S = 600
"""Long enough to follow a redirect on a slow phone, short enough that an unseen flash goes."""

NOTICE = "notice"
SECRET = "secret"
_KEY_LABEL = b"clubfeed console flash v1"


class Flash(msgspec.Struct, frozen=True):
    """`kind` says how the page shows `text`: a notice banner, or a new secret."""

    kind: str
    text: str


def _sealer(session_token: str) -> Sealer:
    return Sealer.of(session_token, _KEY_LABEL)


def _open(sealer: Sealer, sealed: bytes) -> Flash | None:
    plain = sealer.open(sealed)
    return None if plain is None else msgspec.json.decode(plain, type=Flash)


def put(conn: Connection, session_token: str, flash: Flash) -> int:
    """Store `flash` for this session's next page; its id goes in that page's URL.

    Flashes nobody took are deleted here once expired, so the table stays small.
    """
    sealer = _sealer(session_token)
    now = now_us()
    conn.execute(delete(console_flashes).where(console_flashes.c.expires_at <= now))
    flash_id: int = conn.execute(
        insert(console_flashes)
        .values(
            session_hash=sealer.token_hash,
            sealed=sealer.seal(msgspec.json.encode(flash)),
            expires_at=now + TTL_S * 1_000_000,
        )
        .returning(console_flashes.c.id)
    ).scalar_one()
    return flash_id


def take(conn: Connection, session_token: str, flash_id: int) -> Flash | None:
    """The flash `flash_id` of this session, deleted as it is read; None if gone or not its own."""
    sealer = _sealer(session_token)
    row = conn.execute(
        delete(console_flashes)
        .where(
            console_flashes.c.id == flash_id,
            console_flashes.c.session_hash == sealer.token_hash,
        )
        .returning(console_flashes.c.sealed, console_flashes.c.expires_at)
    ).first()
    if row is None or row.expires_at <= now_us():
        return None
    return _open(sealer, row.sealed)


def forget_session(conn: Connection, session_token: str) -> None:
    """Drop a session's untaken flashes (at logout: their key is gone with the cookie)."""
    conn.execute(
        delete(console_flashes).where(console_flashes.c.session_hash == token_hash(session_token))
    )
