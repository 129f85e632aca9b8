"""Idempotency keys: a write sent again with the same key gets the first answer back.

Keys are checked and stored inside the write transaction, after the business's
clock row is locked, so two requests racing with one key are serialized and the
second sees the first's stored response.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select

from clubfeed.errors import IdempotencyReused
from clubfeed.storage.schema import idempotency_keys
from clubfeed.timefmt import now_us

MAX_KEY_LENGTH = 255
KEY_PATTERN = r"^[!-~](?:[ -~]*[!-~])?$"
"""Visible ASCII, spaces only inside: HTTP strips a header value's outer white space."""
KEY_RE = re.compile(KEY_PATTERN)


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: bytes


def request_hash(method: str, path: str, body: bytes) -> bytes:
    """What makes two requests "the same" for an idempotency key."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def find(conn: Connection, business_id: int, key: str, fingerprint: bytes) -> StoredResponse | None:
    """The stored response for `key`, if any; IdempotencyReused if it answered another request."""
    row = conn.execute(
        select(
            idempotency_keys.c.request_hash,
            idempotency_keys.c.status_code,
            idempotency_keys.c.response_body,
        ).where(idempotency_keys.c.business_id == business_id, idempotency_keys.c.key == key)
    ).first()
    if row is None:
        return None
    if bytes(row.request_hash) != fingerprint:
        raise IdempotencyReused(
            f"Idempotency-Key {key!r} was already used for a different request; "
            "use a new key for a new request."
        )
    return StoredResponse(row.status_code, bytes(row.response_body))


def store(
    conn: Connection, business_id: int, key: str, fingerprint: bytes, response: StoredResponse
) -> None:
    conn.execute(
        insert(idempotency_keys).values(
            business_id=business_id,
            key=key,
            request_hash=fingerprint,
            status_code=response.status_code,
            response_body=response.body,
            created_at=now_us(),
        )
    )


def forget(conn: Connection, business_id: int, before_us: int) -> int:
    """Drop the business's keys stored before `before_us`; how many went."""
    result = conn.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.business_id == business_id,
            idempotency_keys.c.created_at < before_us,
        )
    )
    return result.rowcount
