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
    Rate limits are token buckets in the `limits` library's notation ("10/minute": a
    burst of 10, refilled steadily over a minute) or "off"; they are kept in memory://
    for one process, or in Redis (redis://host:6379) for several, under
    `rate_limit_prefix`. `public_url` is where clients reach the API
    (https://api.vendor.example): Link headers and the OAuth issuer start with it, since a
    Host header is the client's to choose; unset, they use the request's URL, whose Host
    must then be one of `allowed_hosts` (web/hosts.py). `db_timeout_s` bounds each wait on
    the database that is not a query (a free pooled connection, a lock another writer
    holds, a new PostgreSQL connection): past it, 503.
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
    # A refresh token its client presents again this soon after using it answers with the
    # pair that use produced (clients refreshing from several threads at once); later, reuse
    # revokes the grant. 0 revokes at once.
    refresh_grace_s: int = 30
    authorization_code_ttl_s: int = 60
    activity_flush_s: float = 1.0
    public_url: str | None = None
    # A complete transfer of 10 million records is 1,000 pages: the burst alone holds six,
    # and 100 requests/s sustained outruns one connection's ~70 pages/s (see the README).
    read_rate_limit: str = "6000/minute"
    write_rate_limit: str = "6000/minute"
    auth_failure_rate_limit: str = "300/minute"
    rate_limit_prefix: str = "clubfeed"
    db_timeout_s: float = 30.0
    # Metrics at /metrics: "off", "loopback" (clients on 127.0.0.0/8 or ::1 only, as
    # uvicorn sees them after trusted proxy headers) or "token" (a bearer token).
    metrics: str = "loopback"
    metrics_token: str | None = None
    # prometheus-client's own variable: where several worker processes share values.
    metrics_dir: str | None = None
    log_format: str = "console"
    access_log: bool = True
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
    # Content codings offered for JSON answers, preferred first (web/compression.py); "off"
    # when a proxy in front compresses instead.
    compression: str = "zstd,br,gzip"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from `CLUBFEED_*` environment variables, with defaults for the rest."""
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("CLUBFEED_DATABASE_URL") or DEFAULT_DATABASE_URL,
            secret_key=env.get("CLUBFEED_SECRET_KEY") or None,
            max_body_bytes=_positive(env, "CLUBFEED_MAX_BODY_BYTES", cls.max_body_bytes),
            max_query_bytes=_positive(env, "CLUBFEED_MAX_QUERY_BYTES", cls.max_query_bytes),
            pool_size=_positive(env, "CLUBFEED_DB_POOL_SIZE", cls.pool_size),
            cookie_secure=_flag(env, "CLUBFEED_COOKIE_SECURE"),
            rate_limit_storage=env.get("CLUBFEED_RATE_LIMIT_STORAGE") or cls.rate_limit_storage,
            login_rate_limit=env.get("CLUBFEED_LOGIN_RATE_LIMIT") or cls.login_rate_limit,
            token_rate_limit=env.get("CLUBFEED_TOKEN_RATE_LIMIT") or cls.token_rate_limit,
            public_url=env.get("CLUBFEED_PUBLIC_URL") or None,
            read_rate_limit=env.get("CLUBFEED_READ_RATE_LIMIT") or cls.read_rate_limit,
            write_rate_limit=env.get("CLUBFEED_WRITE_RATE_LIMIT") or cls.write_rate_limit,
            auth_failure_rate_limit=(
                env.get("CLUBFEED_AUTH_FAILURE_RATE_LIMIT") or cls.auth_failure_rate_limit
            ),
            rate_limit_prefix=env.get("CLUBFEED_RATE_LIMIT_PREFIX") or cls.rate_limit_prefix,
            db_timeout_s=_seconds(env, "CLUBFEED_DB_TIMEOUT_S", cls.db_timeout_s),
            metrics=(env.get("CLUBFEED_METRICS") or cls.metrics).strip().lower(),
            metrics_token=env.get("CLUBFEED_METRICS_TOKEN") or None,
            metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
            log_format=(env.get("CLUBFEED_LOG_FORMAT") or cls.log_format).strip().lower(),
            access_log=_flag(env, "CLUBFEED_ACCESS_LOG") is not False,
            header_timeout_s=_positive(env, "CLUBFEED_HEADER_TIMEOUT", cls.header_timeout_s),
            body_timeout_s=_positive(env, "CLUBFEED_BODY_TIMEOUT", cls.body_timeout_s),
            keepalive_timeout_s=_positive(
                env, "CLUBFEED_KEEPALIVE_TIMEOUT", cls.keepalive_timeout_s
            ),
            max_connections=_positive(env, "CLUBFEED_MAX_CONNECTIONS", cls.max_connections),
            shutdown_grace_s=_positive(env, "CLUBFEED_SHUTDOWN_GRACE", cls.shutdown_grace_s),
            allowed_hosts=_names(env.get("CLUBFEED_ALLOWED_HOSTS")) or cls.allowed_hosts,
            compression=env.get("CLUBFEED_COMPRESSION") or cls.compression,
            access_token_ttl_s=_positive(env, "CLUBFEED_ACCESS_TOKEN_TTL", cls.access_token_ttl_s),
            refresh_grace_s=_whole(env, "CLUBFEED_REFRESH_GRACE", cls.refresh_grace_s),
        )


# The values of every setting are checked here, naming the variable: a typo must fail the
# start, never quietly mean something else (a Secure cookie turned off, a timeout of 0).
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    """True or False for the usual words; None when unset."""
    value = (env.get(name) or "").strip().lower()
    if not value:
        return None
    if value not in _TRUE + _FALSE:
        raise ValueError(f"{name} is {value!r}; use 1 or 0 (true/false, yes/no, on/off)")
    return value in _TRUE


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    """A positive whole number, or the default when unset."""
    raw = (env.get(name) or "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} is {raw!r}; use a whole number of at least 1") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number of at least 0, or the default when unset."""
    raw = (env.get(name) or "").strip()
    if raw and not raw.isdigit():
        raise ValueError(f"{name} is {raw!r}; use a whole number of at least 0")
    return int(raw) if raw else default


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """A positive number of seconds (at least a millisecond), or the default when unset."""
    raw = (env.get(name) or "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} is {raw!r}; use a number of seconds, e.g. 30") from None
    if not value >= 0.001:
        raise ValueError(f"{name} must be at least 0.001 seconds, not {value}")
    return value


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(name.strip().lower() for name in (value or "").split(",") if name.strip())
