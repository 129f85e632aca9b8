"""Rate limits, and how a client is told about them.

/v1 has three token buckets: reads per integrator (across all its businesses), writes
per business (its ingest key), and requests with a missing or wrong credential per
client address. A right credential never costs the address anything; once an address
is over, this process refuses it from memory before any credential is looked up, so a
flood of bad keys costs no database work. Each allowed /v1 request costs one bucket
operation (a dict update, or one Redis round trip) and no database statement.

Clients see the RateLimit-Policy and RateLimit fields of draft-ietf-httpapi-ratelimit-
headers-10 on every /v1 response that spent from a bucket, and on each 429 (problem+json,
with Retry-After). Console login and the OAuth token endpoint use the same buckets
through `Limit`, answering in their own formats.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from fastapi import Request
from fastapi.responses import Response
from limits.errors import ConfigurationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clubfeed.errors import Unauthenticated
from clubfeed.settings import Settings
from clubfeed.web.buckets import Buckets, Policy, Verdict, open_buckets
from clubfeed.web.rfc9457 import problem_response

__all__ = [
    "ApiLimits",
    "Limit",
    "RateLimitHeaders",
    "RateLimited",
    "check",
    "client_address",
    "too_many_requests",
]

T = TypeVar("T")

SLUG = "rate-limited"
# Where an allowed request leaves its RateLimit fields for `RateLimitHeaders` to send.
_SCOPE_KEY = "clubfeed.ratelimit"
_MAX_BLOCKED = 100_000


def _fields(verdict: Verdict) -> list[tuple[bytes, bytes]]:
    p = verdict.policy
    return [
        (b"ratelimit-policy", f'"{p.name}";q={p.quota};w={p.window_s}'.encode()),
        (b"ratelimit", f'"{p.name}";r={verdict.remaining};t={verdict.next_in_s}'.encode()),
    ]


class RateLimited(Exception):
    """A bucket is empty: answer 429 with when to retry."""

    def __init__(self, verdict: Verdict, detail: str) -> None:
        super().__init__(detail)
        self.verdict = verdict
        self.detail = detail


async def too_many_requests(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RateLimited)
    wait = max(1, exc.verdict.next_in_s)
    headers = {name.decode(): value.decode() for name, value in _fields(exc.verdict)}
    return problem_response(
        429,
        "Too many requests",
        f"{exc.detail} Retry in {wait} s; the RateLimit header says how many requests remain.",
        slug=SLUG,
        headers={"Retry-After": str(wait), **headers},
        extensions={"violated-policies": [exc.verdict.policy.name]},
    )


def client_address(request: Request) -> str:
    """The key of the client's address: an IPv4 address, or an IPv6 address's /64."""
    host = request.client.host if request.client else "unknown"
    if ":" in host:
        try:
            return str(ipaddress.IPv6Network(f"{host}/64", strict=False))
        except ValueError:
            pass
    return host


class ApiLimits:
    """The /v1 buckets of one process; a policy of None is off."""

    def __init__(self, buckets: Buckets, settings: Settings) -> None:
        self._buckets = buckets
        self._reads = Policy.parse("reads", settings.read_rate_limit)
        self._writes = Policy.parse("writes", settings.write_rate_limit)
        self._failures = Policy.parse("auth-failures", settings.auth_failure_rate_limit)
        # Addresses over their failure limit, and until when (monotonic seconds). Read on
        # the event loop, written from the thread pool: the lock keeps the sweep whole.
        self._blocked: dict[str, float] = {}
        self._blocked_lock = threading.Lock()

    def address(self, request: Request) -> str:
        """The caller's address key; RateLimited at once while that address is over its limit."""
        address = client_address(request)
        until = self._blocked.get(address)
        if until is not None and self._failures is not None:
            wait = until - time.monotonic()
            if wait > 0:
                raise RateLimited(
                    Verdict(self._failures, False, 0, math.ceil(wait)), self._failed_detail()
                )
            with self._blocked_lock:
                self._blocked.pop(address, None)
        return address

    def authenticated(self, address: str, check: Callable[[], T]) -> T:
        """`check()`, charging `address` one failure when it raises Unauthenticated."""
        try:
            return check()
        except Unauthenticated:
            if self._failures is not None:
                verdict = self._buckets.take(self._failures, address)
                if verdict is not None and not verdict.allowed:
                    self._block(address, verdict.next_in_s)
                    raise RateLimited(verdict, self._failed_detail()) from None
            raise

    def read(self, request: Request, integrator_id: int) -> None:
        """Spend one read of this integrator's; RateLimited when none is left."""
        self._spend(request, self._reads, str(integrator_id), "This integrator's reads")

    def write(self, request: Request, business_id: int) -> None:
        """Spend one write of this business's ingest key; RateLimited when none is left."""
        self._spend(request, self._writes, str(business_id), "This ingest key's writes")

    def _spend(self, request: Request, policy: Policy | None, key: str, whose: str) -> None:
        if policy is None:
            return
        verdict = self._buckets.take(policy, key)
        if verdict is None:
            return
        if not verdict.allowed:
            raise RateLimited(
                verdict,
                f"{whose} are limited to {policy.quota:,} per {policy.window_s:,} s, in bursts "
                f"of up to {policy.quota:,} (policy {policy.name!r}).",
            )
        request.scope[_SCOPE_KEY] = _fields(verdict)

    def _failed_detail(self) -> str:
        assert self._failures is not None
        return (
            f"More than {self._failures.quota:,} requests with a missing or wrong credential came "
            f"from this address within {self._failures.window_s:,} s, so requests from it are "
            "refused for now, whatever they carry. Check the credentials you send."
        )

    def _block(self, address: str, seconds: int) -> None:
        now = time.monotonic()
        with self._blocked_lock:
            if len(self._blocked) >= _MAX_BLOCKED:
                self._blocked = {a: until for a, until in self._blocked.items() if until > now}
                if len(self._blocked) >= _MAX_BLOCKED:
                    # Many addresses at once: the buckets still refuse each after one lookup.
                    self._blocked.clear()
            self._blocked[address] = now + seconds


class RateLimitHeaders:
    """Adds the RateLimit fields an allowed request earned to its response, whatever its status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start" and _SCOPE_KEY in scope:
                message["headers"] = [*message.get("headers", ()), *scope[_SCOPE_KEY]]
            await send(message)

        await self.app(scope, receive, send_with_fields)


class Limit:
    """One policy for endpoints that answer in their own format (console login, OAuth token)."""

    def __init__(self, buckets: Buckets, policy: Policy | None) -> None:
        self._buckets = buckets
        self._policy = policy

    def hit(self, key: str) -> int | None:
        """Spend one attempt of `key`'s; None if allowed, else seconds to wait (for Retry-After)."""
        return self._wait(key, spend=True)

    def test(self, key: str) -> int | None:
        """Like `hit` but spends nothing, for keys charged only once the outcome is known."""
        return self._wait(key, spend=False)

    def _wait(self, key: str, *, spend: bool) -> int | None:
        if self._policy is None:
            return None
        verdict = self._buckets.take(self._policy, key, spend=spend)
        if verdict is None or verdict.allowed:
            return None
        return max(1, verdict.next_in_s)


def check(settings: Settings) -> None:
    """Raise ValueError, naming the setting, for a rate limit or storage that cannot work.

    `clubfeed serve` calls it before any worker starts, so a typo fails the start once
    instead of failing every worker as it loads.
    """
    for name, spec in (
        ("login", settings.login_rate_limit),
        ("oauth", settings.token_rate_limit),
        ("reads", settings.read_rate_limit),
        ("writes", settings.write_rate_limit),
        ("auth-failures", settings.auth_failure_rate_limit),
    ):
        Policy.parse(name, spec)
    try:
        open_buckets(settings.rate_limit_storage, settings.rate_limit_prefix)
    except ConfigurationError as exc:
        raise ValueError(f"CLUBFEED_RATE_LIMIT_STORAGE: {exc}") from exc
