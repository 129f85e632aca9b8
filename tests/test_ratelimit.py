"""Rate limits on /v1 through real HTTP, on both databases, in memory and in a real Redis.

Every request here comes from 127.0.0.1, which uvicorn trusts as a proxy: each test
names its client addresses in X-Forwarded-For, as nginx would, so per-address counts
are tested for real. Limits are per hour, so nothing refills while a test runs.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine, event

from clubfeed.settings import Settings
from tests.conftest import Server, _free_port
from tests.factories import Tenant, new_business, new_integrator, new_tenant, record
from tests.problemkit import assert_problem

REDIS_URL = os.environ.get("CLUBFEED_TEST_REDIS_URL") or "redis://127.0.0.1:6379"
TIGHT = {
    "read_rate_limit": "4/hour",
    "write_rate_limit": "2/hour",
    "auth_failure_rate_limit": "3/hour",
}
_addresses = itertools.count(1)


def _address() -> str:
    """A client address no other test of this run uses (TEST-NET-3)."""
    n = next(_addresses)
    return f"203.0.{113 + n // 250}.{n % 250 + 1}"


@pytest.fixture(scope="module")
def tight(db: Engine, db_url: str) -> Iterator[Server]:
    with Server(Settings(database_url=db_url, **TIGHT)) as running:
        yield running


@contextmanager
def _client(server: Server, address: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.base_url, headers={"X-Forwarded-For": address}, timeout=60
    ) as client:
        yield client


class Clock:
    """Seconds since the test's first request, to bound the waits the server names."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def elapsed(self) -> int:
        return math.ceil(time.monotonic() - self.started)


def _assert_fields(
    response: httpx.Response, policy: str, q: int, w: int, r: int, clock: Clock
) -> None:
    """The RateLimit-Policy and RateLimit fields of a request that spent from `policy`."""
    assert response.headers["ratelimit-policy"] == f'"{policy}";q={q};w={w}'
    match = re.fullmatch(rf'"{policy}";r={r};t=(\d+)', response.headers["ratelimit"])
    assert match, response.headers["ratelimit"]
    assert w // q - clock.elapsed() <= int(match[1]) <= w // q


def _assert_limited(
    response: httpx.Response, policy: str, q: int, w: int, clock: Clock
) -> dict[str, Any]:
    body = assert_problem(response, 429, "rate-limited")
    assert body["violated-policies"] == [policy]
    wait = int(response.headers["retry-after"])
    assert w // q - clock.elapsed() <= wait <= w // q
    assert response.headers["ratelimit-policy"] == f'"{policy}";q={q};w={w}'
    assert response.headers["ratelimit"] == f'"{policy}";r=0;t={wait}'
    assert "www-authenticate" not in response.headers
    return body


def _no_fields(response: httpx.Response) -> None:
    assert "ratelimit" not in response.headers
    assert "ratelimit-policy" not in response.headers


def test_reads_are_limited_per_integrator_across_its_businesses(tight: Server, db: Engine) -> None:
    mine, others = new_tenant(db), new_tenant(db)
    mine_elsewhere = Tenant(new_business(db), mine.integrator)
    clock = Clock()
    with _client(tight, _address()) as client:
        for remaining in (3, 2):
            response = client.get("/v1/users", headers=mine.read_headers)
            assert response.status_code == 200, response.text
            _assert_fields(response, "reads", 4, 3600, remaining, clock)
        # Another business read with the same integrator key spends from the same bucket,
        # and a request that spent answers with the fields whatever its status.
        response = client.get("/v1/users", headers=mine_elsewhere.read_headers)
        _assert_fields(response, "reads", 4, 3600, 1, clock)
        missing = client.get("/v1/users/u-none", headers=mine.read_headers)
        assert_problem(missing, 404, "not-found")
        _assert_fields(missing, "reads", 4, 3600, 0, clock)

        limited = [
            client.get("/v1/users", headers=mine.read_headers),
            client.get("/v1/users/u-none", headers=mine_elsewhere.read_headers),
            # Refused before the body is read: broken JSON gets 429, not 400.
            client.post("/v1/users/lookup", content=b"{", headers=mine.read_headers),
        ]
        for response in limited:
            body = _assert_limited(response, "reads", 4, 3600, clock)
            assert "This integrator's reads" in body["detail"]

        # Another integrator is not slowed, nor are the business's writes.
        response = client.get("/v1/users", headers=others.read_headers)
        assert response.status_code == 200
        _assert_fields(response, "reads", 4, 3600, 3, clock)
        written = client.put(
            "/v1/users/u-1", json=record("users", "u-1"), headers=mine.write_headers
        )
        assert written.status_code == 201, written.text
        _assert_fields(written, "writes", 2, 3600, 1, clock)


def test_writes_are_limited_per_business(tight: Server, db: Engine) -> None:
    mine, other = new_tenant(db), new_tenant(db)
    clock = Clock()
    with _client(tight, _address()) as client:
        for n, remaining in ((1, 1), (2, 0)):
            response = client.put(
                f"/v1/users/u-{n}", json=record("users", f"u-{n}"), headers=mine.write_headers
            )
            assert response.status_code == 201, response.text
            _assert_fields(response, "writes", 2, 3600, remaining, clock)
        limited = [
            client.put("/v1/users/u-3", json=record("users", "u-3"), headers=mine.write_headers),
            client.delete("/v1/users/u-1", headers=mine.write_headers),
            client.post("/v1/users/batch", content=b"{", headers=mine.write_headers),
        ]
        for response in limited:
            body = _assert_limited(response, "writes", 2, 3600, clock)
            assert "This ingest key's writes" in body["detail"]

        # Another business writes on; the refused writes changed nothing.
        response = client.put(
            "/v1/users/u-3", json=record("users", "u-3"), headers=other.write_headers
        )
        assert response.status_code == 201
        _assert_fields(response, "writes", 2, 3600, 1, clock)
        listed = client.get("/v1/users", headers=mine.read_headers).json()["data"]
        assert [user["id"] for user in listed] == ["u-1", "u-2"]


@contextmanager
def _statements(server: Server) -> Iterator[list[str]]:
    """Every statement the server's requests run meanwhile (the activity writer's aside)."""
    engine: Engine = server.server.config.app.state.clubfeed.engine
    executed: list[str] = []

    def record_statement(*args: Any) -> None:
        if threading.current_thread().name != "activity-recorder":
            executed.append(args[2])

    event.listen(engine, "before_cursor_execute", record_statement)
    try:
        yield executed
    finally:
        event.remove(engine, "before_cursor_execute", record_statement)


def test_failed_credentials_are_limited_per_address(tight: Server, db: Engine) -> None:
    tenant = new_tenant(db)
    wrong_read = {**tenant.read_headers, "X-Integrator-Key": "cfk_wrong"}
    wrong_write = {"Authorization": "Bearer cfi_wrong"}
    flood, elsewhere = _address(), _address()
    clock = Clock()
    with _client(tight, flood) as client:
        # Right credentials never count against the address: four here, over its three.
        for n in range(2):
            assert client.get("/v1/users", headers=tenant.read_headers).status_code == 200
            user = record("users", f"u-{n}")
            response = client.put(f"/v1/users/u-{n}", json=user, headers=tenant.write_headers)
            assert response.status_code == 201
        # Wrong and missing credentials do, on reads and writes alike.
        for response in (
            client.get("/v1/users", headers=wrong_read),
            client.get("/v1/users"),
            client.put("/v1/users/u-9", json=record("users", "u-9"), headers=wrong_write),
        ):
            assert_problem(response, 401, "unauthenticated")
            _no_fields(response)
        body = _assert_limited(client.get("/v1/users"), "auth-failures", 3, 3600, clock)
        assert "missing or wrong credential" in body["detail"]

        # From now on nothing from this address is looked up, whatever it carries.
        reader = Tenant(tenant.business, new_integrator(db))
        with _statements(tight) as executed:
            for _ in range(20):
                _assert_limited(
                    client.get("/v1/users", headers=wrong_read), "auth-failures", 3, 3600, clock
                )
            for response in (
                client.get("/v1/users", headers=reader.read_headers),
                client.post("/v1/users/batch", json={"upsert": []}, headers=tenant.write_headers),
            ):
                _assert_limited(response, "auth-failures", 3, 3600, clock)
        assert executed == []

    with _client(tight, elsewhere) as client:
        response = client.get("/v1/users", headers=reader.read_headers)
        assert response.status_code == 200
        _assert_fields(response, "reads", 4, 3600, 3, clock)
        assert_problem(client.get("/v1/users", headers=wrong_read), 401, "unauthenticated")


def test_ipv6_clients_are_counted_per_64(tight: Server) -> None:
    network = f"2001:db8:{next(_addresses):x}"
    clock = Clock()
    for n in range(3):
        with _client(tight, f"{network}::{n + 1}") as client:
            assert_problem(client.get("/v1/users"), 401, "unauthenticated")
    with _client(tight, f"{network}::ff") as client:
        _assert_limited(client.get("/v1/users"), "auth-failures", 3, 3600, clock)
    with _client(tight, f"{network}:1::1") as client:
        assert_problem(client.get("/v1/users"), 401, "unauthenticated")


# Several workers: two app servers sharing a real Redis.


@pytest.fixture(scope="module")
def workers(db: Engine, db_url: str) -> Iterator[tuple[Server, Server, str]]:
    """Two servers counting in Redis under a prefix of their own, deleted at the end."""
    prefix = f"clubfeed-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        database_url=db_url, rate_limit_storage=REDIS_URL, rate_limit_prefix=prefix, **TIGHT
    )
    try:
        with Server(settings) as first, Server(settings) as second:
            yield first, second, prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_workers_share_their_counts_in_redis(
    workers: tuple[Server, Server, str], db: Engine
) -> None:
    first, second, prefix = workers
    tenant = new_tenant(db)
    address = _address()
    clock = Clock()
    with _client(first, address) as one, _client(second, address) as two:
        for client, remaining in ((one, 3), (two, 2), (one, 1), (two, 0)):
            response = client.get("/v1/users", headers=tenant.read_headers)
            assert response.status_code == 200
            _assert_fields(response, "reads", 4, 3600, remaining, clock)
        for client in (one, two):
            _assert_limited(
                client.get("/v1/users", headers=tenant.read_headers), "reads", 4, 3600, clock
            )

        for client, remaining in ((two, 1), (one, 0)):
            response = client.put(
                f"/v1/users/u-{remaining}",
                json=record("users", f"u-{remaining}"),
                headers=tenant.write_headers,
            )
            assert response.status_code == 201
            _assert_fields(response, "writes", 2, 3600, remaining, clock)
        response = two.put(
            "/v1/users/u-2", json=record("users", "u-2"), headers=tenant.write_headers
        )
        _assert_limited(response, "writes", 2, 3600, clock)

        for client in (one, two, one):
            assert_problem(client.get("/v1/users"), 401, "unauthenticated")
        for client in (two, one):
            _assert_limited(client.get("/v1/users"), "auth-failures", 3, 3600, clock)

    store = redis.Redis.from_url(REDIS_URL)
    integrator_id, business_id = tenant.integrator.id, tenant.business.id
    for key in (f"reads:{integrator_id}", f"writes:{business_id}", f"auth-failures:{address}"):
        assert 0 < store.pttl(f"{prefix}:{key}") <= 3_600_000
    store.close()


def test_an_unreachable_redis_lets_requests_through(
    db: Engine, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Rate limits protect the service; losing Redis must not take the API down with it."""
    tenant = new_tenant(db)
    away = f"redis://127.0.0.1:{_free_port()}"
    settings = Settings(database_url=db_url, rate_limit_storage=away, **TIGHT)
    with (
        caplog.at_level(logging.WARNING, "clubfeed.web.buckets"),
        Server(settings) as server,
        _client(server, _address()) as client,
    ):
        for _ in range(5):
            response = client.get("/v1/users", headers=tenant.read_headers)
            assert response.status_code == 200
            _no_fields(response)
        for _ in range(4):
            assert_problem(client.get("/v1/users"), 401, "unauthenticated")
    assert "rate limit storage unreachable, requests allowed for the next 5 s" in caplog.text
