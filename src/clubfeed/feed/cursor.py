"""Opaque, signed cursors: where a paged query stands and what it was asked.

A cursor is base64url(msgpack(state) + HMAC-SHA256(state)[:16]). The state holds
the business, resource, filters and the bounds fixed by the first page, so every
later page answers the same question, and a cursor cannot be forged, edited or
carried to another business, resource or set of filters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

import msgspec
from sqlalchemy import Connection, select

from clubfeed.errors import BadRequest, ErrorItem
from clubfeed.storage.engine import dialect_insert
from clubfeed.storage.schema import server_secrets

VERSION = 2
_TAG_BYTES = 16


class CursorState(msgspec.Struct, array_like=True, frozen=True):
    """The position of a paged query and the question it answers.

    `after`: last seq served; `hi`: the highest seq this query may return;
    `until_us`: its consistent_until; `filters`: sorted (name, value) pairs,
    including modified_since / modified_before as they were asked; `limit`: the
    page size the cursor's page was asked with, which a cursor sent alone keeps
    (0 in cursors issued before it was carried).
    """

    version: int
    business_id: int
    resource: str
    after: int
    hi: int
    until_us: int
    filters: tuple[tuple[str, str], ...]
    limit: int = 0


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CursorState)


def _bad(detail: str) -> BadRequest:
    return BadRequest(detail, [ErrorItem(detail, "cursor")])


class CursorSigner:
    """Signs and verifies cursors with one key shared by every API process."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_TAG_BYTES]

    def encode(self, state: CursorState) -> str:
        payload = _encoder.encode(state)
        return base64.urlsafe_b64encode(payload + self._tag(payload)).rstrip(b"=").decode()

    def decode(self, token: str) -> CursorState:
        """The state of a cursor this service issued; BadRequest for anything else."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError) as exc:
            raise _bad("The cursor is not one this API issued; copy next_cursor exactly.") from exc
        payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        if len(raw) <= _TAG_BYTES or not hmac.compare_digest(tag, self._tag(payload)):
            raise _bad(
                "The cursor is not one this API issued, or it was altered; copy next_cursor exactly."
            )
        try:
            state = _decoder.decode(payload)
        except msgspec.DecodeError as exc:
            raise _bad(
                "The cursor is from an incompatible version; start the query again."
            ) from exc
        if state.version != VERSION:
            raise _bad("The cursor is from an older version of this API; start the query again.")
        return state


def load_key(conn: Connection, configured: str | None) -> bytes:
    """The cursor signing key: the configured secret, else one kept in the database.

    Keeping it in the database means every process sharing the database agrees on
    it without configuration, and cursors survive restarts.
    """
    if configured:
        return hashlib.sha256(configured.encode()).digest()
    conn.execute(
        dialect_insert(conn)(server_secrets)
        .values(name="cursor", value=secrets.token_bytes(32))
        .on_conflict_do_nothing(index_elements=["name"])
    )
    value: bytes = conn.execute(
        select(server_secrets.c.value).where(server_secrets.c.name == "cursor")
    ).scalar_one()
    return bytes(value)
