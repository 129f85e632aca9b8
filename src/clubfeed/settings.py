"""Run-time settings, built once by the entry point and passed down (never read at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///clubfeed.db"


@dataclass(frozen=True)
class Settings:
    """What a process needs to know about its deployment.

    `secret_key` signs cursors; when unset, a random key is kept in the database
    so that every process sharing the database shares the key.
    """

    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str | None = None
    max_body_bytes: int = 64 * 1024 * 1024
    # Under uvicorn's httptools parser a whole URL is at most 65,535 bytes; a longer one
    # gets its plain 400, so the API's own 414 (which points to POST lookup) must come first.
    max_query_bytes: int = 60 * 1024
    pool_size: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from `CLUBFEED_*` environment variables, with defaults for the rest."""
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("CLUBFEED_DATABASE_URL") or DEFAULT_DATABASE_URL,
            secret_key=env.get("CLUBFEED_SECRET_KEY") or None,
            max_body_bytes=int(env.get("CLUBFEED_MAX_BODY_BYTES", cls.max_body_bytes)),
            max_query_bytes=int(env.get("CLUBFEED_MAX_QUERY_BYTES", cls.max_query_bytes)),
            pool_size=int(env.get("CLUBFEED_DB_POOL_SIZE", cls.pool_size)),
        )
