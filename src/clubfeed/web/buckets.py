"""Token buckets kept as GCRA: one timestamp per key, in this process's memory or in Redis.

The `limits` library (5.8, its latest) offers fixed, moving and sliding windows but no
token bucket. A window that was spent in a burst stays shut for the rest of the window;
a bucket refills steadily, so a client that burst gets requests back at the sustained
rate at once, and the wait it is told is exact. GCRA (the generic cell rate algorithm)
is a token bucket stored as one number per key, the theoretical arrival time (TAT): the
bucket is full while the TAT is not in the future, and each request moves it one
emission interval on; a request that would move it more than the bucket's capacity
ahead of now is refused. `limits` still parses the notation ("600/minute") and connects
to Redis. Times are integer microseconds, so a bucket of `quota` holds exactly `quota`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import limits
from limits.errors import ConfigurationError
from limits.storage import RedisStorage, storage_from_string

__all__ = ["OFF", "Buckets", "MemoryBuckets", "Policy", "RedisBuckets", "Verdict", "open_buckets"]

OFF = "off"
MEMORY = "memory://"
# Rate limits must not make the API wait on a Redis that is away: past this, fail open.
REDIS_TIMEOUT_S = 0.5
# After Redis fails, requests go unlimited this long before it is tried again: without
# the pause every request would wait out the timeout on a Redis that does not answer.
REDIS_PAUSE_S = 5.0
_SWEEP_MIN = 4096

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    """A bucket of `quota` requests that refills completely, steadily, in `window_s` seconds."""

    name: str
    quota: int
    window_s: int

    @cached_property
    def interval_us(self) -> int:
        """How long one spent request takes to come back."""
        return max(1, round(self.window_s * 1_000_000 / self.quota))

    @cached_property
    def capacity_us(self) -> int:
        return self.interval_us * self.quota

    @classmethod
    def parse(cls, name: str, spec: str) -> Policy | None:
        """The policy of `spec` in the `limits` notation ("6000/minute"); None for "off"."""
        if spec.strip().lower() == OFF:
            return None
        try:
            item = limits.parse(spec)
        except ValueError as exc:
            raise ValueError(
                f"Rate limit {spec!r} ({name}) is not like '600/minute' or '10 per second', nor 'off'."
            ) from exc
        if item.amount < 1:
            raise ValueError(
                f"Rate limit {spec!r} ({name}) allows nothing; write 'off' to turn it off."
            )
        return cls(name, item.amount, item.get_expiry())


@dataclass(frozen=True)
class Verdict:
    """What a bucket said: allowed or not, requests left, and whole seconds until one more."""

    policy: Policy
    allowed: bool
    remaining: int
    next_in_s: int

    @classmethod
    def of(cls, policy: Policy, debt_us: int, spent: bool) -> Verdict:
        """The verdict for a bucket whose TAT ran `debt_us` ahead of now before this request.

        `spent`: the request was allowed and paid for (not merely looked at or refused).
        """
        if spent:
            debt_us += policy.interval_us
        room_us = policy.capacity_us - debt_us
        remaining = room_us // policy.interval_us
        allowed = spent or remaining > 0
        if remaining >= policy.quota:
            return cls(policy, allowed, policy.quota, 0)
        next_us = (remaining + 1) * policy.interval_us - room_us
        return cls(policy, allowed, remaining, math.ceil(next_us / 1_000_000))


class Buckets(Protocol):
    def take(self, policy: Policy, key: str, *, spend: bool = True) -> Verdict | None:
        """Spend one request from `key`'s bucket if there is one left (or, `spend` False, look).

        None when the storage cannot be reached: the request is allowed, and nothing
        is known to tell the client.
        """


def _monotonic_us() -> int:
    return time.monotonic_ns() // 1000


class MemoryBuckets:
    """Buckets in a dict, for one process; full buckets are forgotten as the dict grows."""

    def __init__(self, clock: Callable[[], int] = _monotonic_us) -> None:
        self._tats: dict[str, int] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._sweep_at = _SWEEP_MIN

    def take(self, policy: Policy, key: str, *, spend: bool = True) -> Verdict:
        name = f"{policy.name}:{key}"
        with self._lock:
            now = self._clock()
            debt = max(0, self._tats.get(name, now) - now)
            spent = spend and debt + policy.interval_us <= policy.capacity_us
            if spent:
                self._tats[name] = now + debt + policy.interval_us
                if len(self._tats) >= self._sweep_at:
                    self._sweep(now)
        return Verdict.of(policy, debt, spent)

    def _sweep(self, now: int) -> None:
        # A bucket whose TAT has passed is full, the same as no entry; amortised O(1).
        self._tats = {name: tat for name, tat in self._tats.items() if tat > now}
        self._sweep_at = max(_SWEEP_MIN, 2 * len(self._tats))


# One round trip; the clock is Redis's, so workers whose clocks differ share one count.
# Lua 5.1 prints numbers with 14 digits, hence the explicit format of the TAT.
_GCRA = b"""
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local debt = math.max(0, (tonumber(redis.call('GET', KEYS[1])) or now) - now)
local after = debt + interval
if after > capacity or ARGV[3] ~= '1' then
  return {0, debt}
end
redis.call('SET', KEYS[1], string.format('%.0f', now + after), 'PX', math.ceil(after / 1000))
return {1, debt}
"""


class RedisBuckets:
    """Buckets in Redis, shared by every worker that uses the same server and prefix."""

    def __init__(self, storage: RedisStorage, clock: Callable[[], float] = time.monotonic) -> None:
        self._storage = storage
        self._script = storage.get_connection().register_script(_GCRA)
        self._clock = clock
        self._paused_until = 0.0

    def take(self, policy: Policy, key: str, *, spend: bool = True) -> Verdict | None:
        if self._clock() < self._paused_until:
            return None
        name = self._storage.prefixed_key(f"{policy.name}:{key}")
        try:
            spent, debt = self._script(
                keys=[name], args=[policy.interval_us, policy.capacity_us, int(spend)]
            )
        except self._storage.base_exceptions as exc:
            self._paused_until = self._clock() + REDIS_PAUSE_S
            log.warning(
                "rate limit storage unreachable, requests allowed for the next %.0f s: %s",
                REDIS_PAUSE_S,
                exc,
            )
            return None
        return Verdict.of(policy, int(debt), bool(spent))


def open_buckets(uri: str, prefix: str) -> Buckets:
    """Buckets at `uri`: memory:// for one process, a Redis URL for several."""
    if uri == MEMORY:
        return MemoryBuckets()
    try:
        # redis is the optional extra clubfeed[redis]: imported only when it is asked for.
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError as exc:
        raise ConfigurationError(
            f"Rate limit storage {uri!r} needs Redis's client: pip install 'clubfeed[redis]'."
        ) from exc
    options: dict[str, Any] = {
        "key_prefix": prefix,
        "socket_timeout": REDIS_TIMEOUT_S,
        "socket_connect_timeout": REDIS_TIMEOUT_S,
        # One try: the pause, not retries, rides out an outage.
        "retry": Retry(NoBackoff(), 0),
    }
    try:
        storage = storage_from_string(uri, **options)
    except ConfigurationError as exc:
        raise ConfigurationError(f"Rate limit storage {uri!r}: {exc}") from exc
    if not isinstance(storage, RedisStorage):
        raise ConfigurationError(
            f"Rate limit storage {uri!r}: use memory:// or Redis (redis://, rediss://, "
            "redis+unix://, redis+sentinel://, redis+cluster://)."
        )
    return RedisBuckets(storage)
