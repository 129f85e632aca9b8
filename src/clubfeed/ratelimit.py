"""Rate limits for the endpoints that guess passwords or secrets: console login and OAuth token.

Backed by the `limits` library: in memory for one process, Redis (or another
storage it supports) when several processes must share the count.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter


class Limit:
    """One named limit, e.g. "10/minute" per key."""

    def __init__(self, limiter: MovingWindowRateLimiter, spec: str, name: str) -> None:
        self._limiter = limiter
        self._item: RateLimitItem = parse(spec)
        self._name = name

    def hit(self, key: str) -> int | None:
        """Count one attempt by `key`; None if allowed, else seconds to wait (for Retry-After)."""
        if self._limiter.hit(self._item, self._name, key):
            return None
        return self._wait(key)

    def test(self, key: str) -> int | None:
        """Like `hit` but counts nothing, for keys charged only once the outcome is known."""
        if self._limiter.test(self._item, self._name, key):
            return None
        return self._wait(key)

    def _wait(self, key: str) -> int:
        reset_at = self._limiter.get_window_stats(self._item, self._name, key).reset_time
        return max(1, math.ceil(reset_at - time.time()))


def limiter(storage_uri: str) -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(storage_from_string(storage_uri))
