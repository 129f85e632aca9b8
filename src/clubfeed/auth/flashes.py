"""Flashes: what the page after a console form says once, the new shared secret included.

A form answers with a redirect, so a reload repeats only the GET, and what that GET
must show waits here. Any API process may serve the GET (they share only the
database), so the message is a row; it is sealed with AES-GCM under a key derived
from the session's cookie token, which the database holds only as a SHA-256 hash.
A database dump therefore never holds a usable secret, and taking a flash deletes
its row in the same statement that reads it, so it is shown at most once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, delete, insert

from clubfeed.auth.credentials import token_hash
from clubfeed.storage.schema import console_flashes
from clubfeed.timefmt import now_us

TTL_S = 600
"""Long enough to follow a redirect on a slow phone, short enough that an unseen flash goes."""

NOTICE = "notice"
SECRET = "secret"
_KEY_LABEL = b"clubfeed console flash v1"
_NONCE_BYTES = 12


class Flash(msgspec.Struct, frozen=True):
    """`kind` says how the page shows `text`: a notice banner, or a new secret."""

    kind: str
    text: str


@dataclass(frozen=True)
class _Sealer:
    """AES-GCM bound to one session: its key from the cookie token, its hash as associated data."""

    key: bytes
    session_hash: bytes

    @classmethod
    def of(cls, session_token: str) -> _Sealer:
        key = hmac.new(session_token.encode(), _KEY_LABEL, hashlib.sha256).digest()
        return cls(key, token_hash(session_token))

    def seal(self, flash: Flash) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + AESGCM(self.key).encrypt(
            nonce, msgspec.json.encode(flash), self.session_hash
        )

    def open(self, sealed: bytes) -> Flash | None:
        nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        try:
            plain = AESGCM(self.key).decrypt(nonce, body, self.session_hash)
        except InvalidTag:
            return None
        return msgspec.json.decode(plain, type=Flash)


def put(conn: Connection, session_token: str, flash: Flash) -> int:
    """Store `flash` for this session's next page; its id goes in that page's URL.

    Flashes nobody took are deleted here once expired, so the table stays small.
    """
    sealer = _Sealer.of(session_token)
    now = now_us()
    conn.execute(delete(console_flashes).where(console_flashes.c.expires_at <= now))
    flash_id: int = conn.execute(
        insert(console_flashes)
        .values(
            session_hash=sealer.session_hash,
            sealed=sealer.seal(flash),
            expires_at=now + TTL_S * 1_000_000,
        )
        .returning(console_flashes.c.id)
    ).scalar_one()
    return flash_id


def take(conn: Connection, session_token: str, flash_id: int) -> Flash | None:
    """The flash `flash_id` of this session, deleted as it is read; None if gone or not its own."""
    sealer = _Sealer.of(session_token)
    row = conn.execute(
        delete(console_flashes)
        .where(
            console_flashes.c.id == flash_id,
            console_flashes.c.session_hash == sealer.session_hash,
        )
        .returning(console_flashes.c.sealed, console_flashes.c.expires_at)
    ).first()
    if row is None or row.expires_at <= now_us():
        return None
    return sealer.open(row.sealed)


def forget_session(conn: Connection, session_token: str) -> None:
    """Drop a session's untaken flashes (at logout: their key is gone with the cookie)."""
    conn.execute(
        delete(console_flashes).where(console_flashes.c.session_hash == token_hash(session_token))
    )
