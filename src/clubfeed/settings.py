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
    so that every process sharing the database shares the key. `cookie_secure`
    None means: mark the session cookie Secure whenever the request came over https.
    Rate limits use the `limits` library's notation ("10/minute"); its storage is
    memory:// for one process, redis://host:6379 for several. `public_url` is where
    clients reach the API (https://api.vendor.example): Link headers and the OAuth issuer
    start with it, since a Host header is the client's to choose; unset, they use the
    request's URL, whose Host must then be one of `allowed_hosts` (web/hosts.py).
    """

    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str | None = None
    max_body_bytes: int = 64 * 1024 * 1024
    # Under uvicorn's httptools parser a whole URL is at most 65,535 bytes; a longer one
    # gets its plain 400, so the API's own 414 (which points to POST lookup) must come first.
    max_query_bytes: int = 60 * 1024
    pool_size: int = 10
    session_ttl_s: int = 12 * 3600
    cookie_secure: bool | None = None
    rate_limit_storage: str = "memory://"
    login_rate_limit: str = "10/minute"
    # Per client across all its businesses: an integrator refreshing hourly for
    # thousands of gyms must fit.
    token_rate_limit: str = "600/minute"
    password_time_cost: int = 3
    password_memory_kib: int = 64 * 1024
    access_token_ttl_s: int = 3600
    authorization_code_ttl_s: int = 60
    activity_flush_s: float = 1.0
    public_url: str | None = None
    # Edge limits (web/serving.py): a client that stalls is closed within 30 s, SIGTERM
    # waits for in-flight requests at most the grace, and each process holds at most
    # max_connections connections (answering 503 beyond).
    header_timeout_s: int = 10
    body_timeout_s: int = 20
    keepalive_timeout_s: int = 5
    max_connections: int = 1000
    shutdown_grace_s: int = 20
    # Host names (port ignored; "*.example.com" or "*" allowed) whose Host header is
    # answered; the public URL's host is added. Loopback by default, so `make run` works.
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

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
            cookie_secure=_flag(env.get("CLUBFEED_COOKIE_SECURE")),
            rate_limit_storage=env.get("CLUBFEED_RATE_LIMIT_STORAGE") or cls.rate_limit_storage,
            login_rate_limit=env.get("CLUBFEED_LOGIN_RATE_LIMIT") or cls.login_rate_limit,
            token_rate_limit=env.get("CLUBFEED_TOKEN_RATE_LIMIT") or cls.token_rate_limit,
            public_url=env.get("CLUBFEED_PUBLIC_URL") or None,
            header_timeout_s=_positive(env, "CLUBFEED_HEADER_TIMEOUT", cls.header_timeout_s),
            body_timeout_s=_positive(env, "CLUBFEED_BODY_TIMEOUT", cls.body_timeout_s),
            keepalive_timeout_s=_positive(
                env, "CLUBFEED_KEEPALIVE_TIMEOUT", cls.keepalive_timeout_s
            ),
            max_connections=_positive(env, "CLUBFEED_MAX_CONNECTIONS", cls.max_connections),
            shutdown_grace_s=_positive(env, "CLUBFEED_SHUTDOWN_GRACE", cls.shutdown_grace_s),
            allowed_hosts=_names(env.get("CLUBFEED_ALLOWED_HOSTS")) or cls.allowed_hosts,
        )


def _flag(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    """A positive whole number, or the default when unset."""
    value = int(env.get(name) or default)
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(name.strip().lower() for name in (value or "").split(",") if name.strip())
