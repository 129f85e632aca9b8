"""Sealing a secret under a token only its holder has: what the database keeps of it is useless alone.

AES-GCM with a key derived (HMAC-SHA256 under a per-use label) from the token, and the
token's SHA-256 hash (what the database stores to find the row) as associated data,
so a sealed value opens only with the token it was sealed for, in the place it was
sealed for. Used for console flashes (the session's cookie token) and for a rotated
refresh token's successor pair (the old refresh token).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from clubfeed.auth.credentials import token_hash

_NONCE_BYTES = 12


@dataclass(frozen=True)
class Sealer:
    key: bytes
    token_hash: bytes

    @classmethod
    def of(cls, token: str, label: bytes) -> Sealer:
        key = hmac.new(token.encode(), label, hashlib.sha256).digest()
        return cls(key, token_hash(token))

    def seal(self, plain: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + AESGCM(self.key).encrypt(nonce, plain, self.token_hash)

    def open(self, sealed: bytes) -> bytes | None:
        """The plain bytes, or None if `sealed` was not sealed by this token (or was altered)."""
        nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        try:
            return AESGCM(self.key).decrypt(nonce, body, self.token_hash)
        except InvalidTag:
            return None
