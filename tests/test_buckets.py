"""Token buckets (GCRA) in memory and in the real Redis on 127.0.0.1:6379: the same answers."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from clubfeed.settings import Settings
from clubfeed.web.buckets import (
    REDIS_TIMEOUT_S,
    Buckets,
    MemoryBuckets,
    Policy,
    RedisBuckets,
    open_buckets,
)
from clubfeed.web.ratelimit import Limit

REDIS_URL = os.environ.get("CLUBFEED_TEST_REDIS_URL") or "redis://127.0.0.1:6379"
HOUR = Policy("reads", 4, 3600)


@pytest.fixture(scope="module")
def redis_prefix() -> Iterator[str]:
    """A key prefix of this run's own, whose keys are deleted at the end."""
    prefix = f"clubfeed-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["memory", "redis"])
def buckets(request: pytest.FixtureRequest, redis_prefix: str) -> Buckets:
    if request.param == "memory":
        return MemoryBuckets()
    opened = open_buckets(REDIS_URL, redis_prefix)
    assert isinstance(opened, RedisBuckets)
    return opened


def _key() -> str:
    return uuid.uuid4().hex


def test_a_bucket_allows_its_quota_at_once_then_refuses(buckets: Buckets) -> None:
    key = _key()
    started = time.monotonic()
    verdicts = [buckets.take(HOUR, key) for _ in range(5)]
    elapsed = time.monotonic() - started
    assert [(v.allowed, v.remaining) for v in verdicts if v] == [
        (True, 3),
        (True, 2),
        (True, 1),
        (True, 0),
        (False, 0),
    ]
    # One request comes back every 900 s: the next one, counted from the first spend.
    for verdict in verdicts:
        assert verdict is not None
        assert 900 - int(elapsed) - 1 <= verdict.next_in_s <= 900
    # Refused requests cost nothing, and other keys have buckets of their own.
    assert buckets.take(HOUR, key, spend=False) == verdicts[-1]
    fresh = buckets.take(HOUR, _key())
    assert fresh is not None and (fresh.allowed, fresh.remaining) == (True, 3)


def test_looking_spends_nothing(buckets: Buckets) -> None:
    key = _key()
    for _ in range(10):
        looked = buckets.take(HOUR, key, spend=False)
        assert looked is not None
        assert (looked.allowed, looked.remaining, looked.next_in_s) == (True, 4, 0)
    spent = buckets.take(HOUR, key)
    assert spent is not None and spent.remaining == 3


def test_a_bucket_refills_one_request_per_interval() -> None:
    now = [1_000_000_000]
    buckets = MemoryBuckets(clock=lambda: now[0])
    policy = Policy("writes", 3, 3)  # one request a second, bursts of three
    assert [v.allowed for v in (buckets.take(policy, "k") for _ in range(4))] == [
        True,
        True,
        True,
        False,
    ]
    refused = buckets.take(policy, "k")
    assert (refused.allowed, refused.remaining, refused.next_in_s) == (False, 0, 1)
    now[0] += 999_999
    assert not buckets.take(policy, "k").allowed
    now[0] += 1
    back = buckets.take(policy, "k")
    assert (back.allowed, back.remaining, back.next_in_s) == (True, 0, 1)
    # A long pause refills the bucket to its quota, never beyond.
    now[0] += 3_600_000_000
    assert [v.remaining for v in (buckets.take(policy, "k") for _ in range(3))] == [2, 1, 0]
    assert not buckets.take(policy, "k").allowed


def test_memory_forgets_full_buckets_as_keys_pile_up() -> None:
    now = [0]
    buckets = MemoryBuckets(clock=lambda: now[0])
    policy = Policy("auth-failures", 10, 10)
    for n in range(10_000):
        buckets.take(policy, f"203.0.113.{n}")
        now[0] += 1_000
    # Only buckets not yet refilled (the last second's keys, at most) are still kept.
    assert len(buckets._tats) <= 4_096 + 1_000


def test_redis_keys_carry_the_prefix_and_expire_when_the_bucket_is_full(
    redis_prefix: str,
) -> None:
    buckets = open_buckets(REDIS_URL, redis_prefix)
    key = _key()
    buckets.take(HOUR, key)
    buckets.take(HOUR, key)
    client = redis.Redis.from_url(REDIS_URL)
    ttl_ms = client.pttl(f"{redis_prefix}:reads:{key}")
    client.close()
    # Two spent requests come back within 1,800 s, so the key lives no longer than that.
    assert 1_790_000 <= ttl_ms <= 1_800_000


def test_the_default_read_limit_lets_a_complete_transfer_through(buckets: Buckets) -> None:
    """10 million records at 10,000 a page is 1,000 pages, each served in ~15 ms at best.

    1,000 acquisitions back to back come faster than any pages could, and a bucket only
    fills with time: if these all pass, so does the real transfer, at any page speed.
    """
    policy = Policy.parse("reads", Settings().read_rate_limit)
    assert policy is not None
    key = _key()
    started = time.monotonic()
    verdicts = [buckets.take(policy, key) for _ in range(1_000)]
    elapsed = time.monotonic() - started
    assert elapsed < 1_000 * 0.015
    assert all(v is not None and v.allowed for v in verdicts)
    last = verdicts[-1]
    assert last is not None and last.remaining >= policy.quota - 1_000


@pytest.mark.parametrize("spec", ["abc", "10/fortnight", "0/minute", ""])
def test_a_policy_that_is_not_one_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="Rate limit"):
        Policy.parse("reads", spec)


def test_off_turns_a_limit_off() -> None:
    assert Policy.parse("reads", "off") is None
    assert Policy.parse("reads", " OFF ") is None
    limit = Limit(MemoryBuckets(), None)
    assert all(limit.hit("k") is None for _ in range(1_000))


def test_login_and_token_limits_count_in_redis(redis_prefix: str) -> None:
    """Console login and the OAuth token endpoint use `Limit`: on Redis, workers add up."""
    first, second = (open_buckets(REDIS_URL, redis_prefix) for _ in range(2))
    policy = Policy.parse("login", "3/minute")
    key = f"ip:{_key()}"
    assert Limit(first, policy).hit(key) is None
    assert Limit(second, policy).hit(key) is None
    assert Limit(first, policy).test(key) is None
    assert Limit(second, policy).hit(key) is None
    assert Limit(first, policy).test(key) == 20
    assert Limit(second, policy).hit(key) == 20


def test_a_redis_that_does_not_answer_costs_one_timeout_then_is_left_alone_a_while() -> None:
    """Without the pause, every request would wait out the timeout while Redis hangs."""
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        opened = open_buckets(f"redis://127.0.0.1:{silent.getsockname()[1]}", "pause-test")
        policy = Policy.parse("reads", "10/minute")
        assert policy is not None
        started = time.monotonic()
        assert opened.take(policy, _key()) is None
        first = time.monotonic() - started
        started = time.monotonic()
        for _ in range(20):
            assert opened.take(policy, _key()) is None
        paused = time.monotonic() - started
    assert first >= REDIS_TIMEOUT_S
    assert paused < REDIS_TIMEOUT_S, "a paused storage must not be tried again"
