"""Admin passwords: argon2id hashes, with the cost set by the deployment's settings."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from clubfeed.settings import Settings

MIN_LENGTH = 12


def hasher(settings: Settings) -> PasswordHasher:
    """argon2id at the configured cost (tests use a cheap one; production the default)."""
    return PasswordHasher(
        time_cost=settings.password_time_cost,
        memory_cost=settings.password_memory_kib,
        parallelism=1,
    )


def check_strength(password: str) -> str | None:
    """Why `password` is too weak to accept, or None."""
    if len(password) < MIN_LENGTH:
        return f"A password needs at least {MIN_LENGTH} characters."
    return None


def verify(ph: PasswordHasher, stored_hash: str, password: str) -> bool:
    try:
        return ph.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
