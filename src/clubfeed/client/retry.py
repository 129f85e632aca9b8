"""When to try a request again, and how long to wait first.

429 and 503 (and the 502/504 a proxy answers while clubfeed restarts) are retried, as
are connection errors; a `Retry-After` (seconds or an HTTP date) is waited out exactly,
anything else backs off exponentially with jitter, so many pollers do not return in step.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Retry:
    """`attempts` tries in all; backoff from `base_s` doubling up to `cap_s`; a
    Retry-After longer than `max_wait_s` is not waited for (the call fails instead)."""

    attempts: int = 6
    base_s: float = 0.5
    cap_s: float = 30.0
    max_wait_s: float = 300.0

    def wait_s(self, attempt: int, retry_after: str | None) -> float | None:
        """Seconds to wait before try `attempt + 1` (attempt counts from 0), or None to stop."""
        if attempt + 1 >= self.attempts:
            return None
        asked = parse_retry_after(retry_after)
        if asked is not None:
            return asked if asked <= self.max_wait_s else None
        backoff: float = min(self.cap_s, self.base_s * 2**attempt)
        return backoff * (0.5 + random.random() / 2)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now (RFC 9110: delay-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
