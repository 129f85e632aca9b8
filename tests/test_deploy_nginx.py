"""Debian's nginx, configured from the shipped deploy/nginx/clubfeed.conf, terminating TLS in
front of `clubfeed serve --workers 2` on PostgreSQL, set up as the README's Production
section tells operators to (CLUBFEED_PUBLIC_URL, CLUBFEED_ALLOWED_HOSTS, rate limits in
Redis, JSON logs). Clients on 127.0.0.2 and up stand for clients on the internet: nginx
reaches the app from 127.0.0.1, the one proxy the app trusts."""

from __future__ import annotations

import os
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import pytest
import redis

from clubfeed.storage.engine import make_engine
from clubfeed.storage.migrate import upgrade
from tests.factories import Tenant, new_tenant, record
from tests.nginxkit import NAME, Proxy, answer, nginx
from tests.problemkit import assert_problem
from tests.servekit import Served, free_port, served

REDIS_URL = os.environ.get("CLUBFEED_TEST_REDIS_URL") or "redis://127.0.0.1:6379"
# The app drops a body that pauses 1 s; these clients pause longer, which nginx allows.
APP_BODY_TIMEOUT_S = 1
TRICKLE_PAUSE_S = 1.5
# Fewer connections per worker than there are slow clients: they fit only if nginx holds them.
APP_MAX_CONNECTIONS = 4
SLOW_CLIENTS = 12


@dataclass(frozen=True)
class Edge:
    proxy: Proxy
    app: Served
    tenant: Tenant


@pytest.fixture(scope="module")
def edge(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    directory = tmp_path_factory.mktemp("nginx")
    engine = make_engine(pg_url)
    upgrade(engine)
    tenant = new_tenant(engine)
    engine.dispose()
    port, prefix = free_port(), f"clubfeed-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    env = {
        "CLUBFEED_PUBLIC_URL": f"https://{NAME}:{port}",
        "CLUBFEED_ALLOWED_HOSTS": NAME,
        "CLUBFEED_LOG_FORMAT": "json",
        "CLUBFEED_RATE_LIMIT_STORAGE": REDIS_URL,
        "CLUBFEED_RATE_LIMIT_PREFIX": prefix,
        "CLUBFEED_AUTH_FAILURE_RATE_LIMIT": "3/hour",
        "CLUBFEED_BODY_TIMEOUT": str(APP_BODY_TIMEOUT_S),
        "CLUBFEED_MAX_CONNECTIONS": str(APP_MAX_CONNECTIONS),
    }
    try:
        with (
            served(pg_url, directory, workers=2, env=env) as app,
            nginx(directory, port, app.port) as proxy,
        ):
            yield Edge(proxy, app, tenant)
    finally:
        store = redis.Redis.from_url(REDIS_URL)
        keys = list(store.scan_iter(f"{prefix}:*"))
        if keys:
            store.delete(*keys)
        store.close()


def test_links_and_the_oauth_issuer_carry_the_public_https_url(edge: Edge) -> None:
    tenant = edge.tenant
    with edge.proxy.client("127.0.0.2") as http:
        for user in ("u-1", "u-2"):
            response = http.put(
                f"/v1/users/{user}", json=record("users", user), headers=tenant.write_headers
            )
            assert response.status_code == 201, response.text
        first = http.get("/v1/users", params={"limit": 1}, headers=tenant.read_headers)
        assert first.status_code == 200
        link = first.headers["link"]
        assert link.startswith(f"<{edge.proxy.public_url}/v1/users?"), link
        assert link.endswith('>; rel="next"'), link
        # Followed through the proxy (NAME resolves nowhere here), it serves the next page.
        target = httpx.URL(link[1 : -len('>; rel="next"')])
        following = http.get(
            target.raw_path.decode(),
            headers={**tenant.read_headers, "X-Request-ID": "deploy-follow"},
        )
        assert [user["id"] for user in following.json()["data"]] == ["u-2"]
        assert "link" not in following.headers
        # nginx's log, like the app's, keeps the path and never the query: no cursor in it.
        assert edge.proxy.access_line("deploy-follow")["path"] == "/v1/users"
        cursor = target.params["cursor"]
        assert cursor not in (edge.proxy.directory / "access.log").read_text()

        metadata = http.get("/.well-known/oauth-authorization-server").json()
        assert metadata["issuer"] == edge.proxy.public_url
        assert metadata["token_endpoint"] == f"{edge.proxy.public_url}/oauth/token"
        assert metadata["authorization_endpoint"] == f"{edge.proxy.public_url}/oauth/authorize"

        # X-Forwarded-Proto arrived: the app knows the client spoke https.
        login = http.get("/console/login")
        assert login.status_code == 200
        assert "; secure" in login.headers["set-cookie"].lower(), login.headers["set-cookie"]
        assert login.headers["strict-transport-security"] == "max-age=63072000"


def test_logs_and_request_ids_name_the_real_client(edge: Edge) -> None:
    with edge.proxy.client("127.0.0.2") as http:
        # What a client claims to be is not what it is: nginx replaces the header.
        response = http.get(
            "/v1/users",
            headers={
                **edge.tenant.read_headers,
                "X-Request-ID": "deploy-logs-1",
                "X-Forwarded-For": "198.51.100.7",
            },
        )
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "deploy-logs-1"
        generated = http.get("/v1/users", headers=edge.tenant.read_headers)
    line = edge.app.line_of("deploy-logs-1")
    assert (line["client"], line["route"], line["status"]) == ("127.0.0.2", "/v1/users", 200)
    assert (line["business_id"], line["integrator_id"]) == (
        edge.tenant.business.id,
        edge.tenant.integrator.id,
    )
    # Without one, nginx's own request id is the app's too, so both logs name it.
    request_id = generated.headers["x-request-id"]
    assert edge.app.line_of(request_id)["client"] == "127.0.0.2"
    proxied = edge.proxy.access_line(request_id)
    assert (proxied["client"], proxied["path"], proxied["status"]) == (
        "127.0.0.2",
        "/v1/users",
        200,
    )
    assert edge.proxy.access_line("deploy-logs-1")["method"] == "GET"


def test_auth_failures_are_limited_per_client_address_across_both_workers(edge: Edge) -> None:
    with edge.proxy.client("127.0.0.3") as flood, edge.proxy.client("127.0.0.4") as neighbour:
        for claimed in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
            response = flood.get("/v1/users", headers={"X-Forwarded-For": claimed})
            assert_problem(response, 401, "unauthenticated")
        limited = flood.get("/v1/users", headers={"X-Forwarded-For": "203.0.113.4"})
        body = assert_problem(limited, 429, "rate-limited")
        assert body["violated-policies"] == ["auth-failures"]
        assert int(limited.headers["retry-after"]) > 0
        # Even a right credential waits, from that address; its neighbour is unaffected.
        assert flood.get("/v1/users", headers=edge.tenant.read_headers).status_code == 429
        assert_problem(neighbour.get("/v1/users"), 401, "unauthenticated")
        assert neighbour.get("/v1/users", headers=edge.tenant.read_headers).status_code == 200


def _trickle(edge: Edge, index: int, body: bytes) -> tuple[ssl.SSLSocket, bytes]:
    """A write whose head and first half of body are sent; the rest is the caller's to send."""
    connection = edge.proxy.raw("127.0.0.5")
    head = (
        f"PUT /v1/users/slow-{index} HTTP/1.1\r\nHost: {NAME}:{edge.proxy.port}\r\n"
        f"Authorization: Bearer {edge.tenant.business.ingest_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"X-Request-ID: deploy-slow-{index}\r\nConnection: close\r\n\r\n"
    )
    connection.sendall(head.encode() + body[: len(body) // 2])
    return connection, body[len(body) // 2 :]


def test_slow_bodies_are_buffered_by_nginx_and_never_reach_a_worker(edge: Edge) -> None:
    bodies = [_json(record("users", f"slow-{index}")) for index in range(SLOW_CLIENTS)]
    slow = [_trickle(edge, index, body) for index, body in enumerate(bodies)]
    # More slow clients than both workers' connection limits together: had nginx passed
    # them on, the app would refuse this one (503) and time their bodies out (408).
    with edge.proxy.client("127.0.0.6") as http:
        started = time.monotonic()
        assert http.get("/v1/users", headers=edge.tenant.read_headers).status_code == 200
        assert time.monotonic() - started < TRICKLE_PAUSE_S
    time.sleep(TRICKLE_PAUSE_S)  # the pause under test: longer than the app's body timeout
    statuses = []
    for connection, rest in slow:
        connection.sendall(rest)
        statuses.append(answer(connection)[0])
    assert statuses == ["HTTP/1.1 201 Created"] * SLOW_CLIENTS
    for index in range(SLOW_CLIENTS):
        line = edge.app.line_of(f"deploy-slow-{index}")
        # The worker saw each request only once its whole body had arrived.
        assert line["status"] == 201 and line["client"] == "127.0.0.5"
        assert line["duration_ms"] < TRICKLE_PAUSE_S * 1000, line


def _json(body: dict[str, object]) -> bytes:
    return httpx.Request("PUT", "/", json=body).read()


def test_plain_http_unknown_names_and_large_bodies_are_refused_at_the_proxy(edge: Edge) -> None:
    host = {"Host": f"{NAME}:{edge.proxy.port}"}
    plain = httpx.get(f"http://127.0.0.1:{edge.proxy.port}/v1/users", headers=host)
    assert_problem(plain, 400, "bad-request")
    assert "https" in plain.json()["detail"]

    with edge.proxy.client("127.0.0.2") as http:
        wrong_host = http.get("/v1/users", headers={"Host": "evil.example"})
        assert wrong_host.status_code == 421
        assert http.get("/metrics").status_code == 404
    with (
        edge.proxy.client("127.0.0.2", sni="evil.example") as http,
        pytest.raises(httpx.ConnectError),
    ):
        http.get("/v1/users")

    connection = edge.proxy.raw("127.0.0.2")
    connection.sendall(
        f"POST /v1/users/batch HTTP/1.1\r\nHost: {NAME}:{edge.proxy.port}\r\n"
        f"Content-Length: {64 * 1024 * 1024 + 1}\r\nConnection: close\r\n\r\n".encode()
    )
    status, body = answer(connection)
    assert status == "HTTP/1.1 413 Request Entity Too Large"
    assert msgspec.json.decode(body)["type"] == "/problems/content-too-large"


def test_nothing_listens_beyond_loopback(edge: Edge) -> None:
    pids = _family(edge.app.process.pid) | _family(edge.proxy.process.pid)
    inodes = {
        os.readlink(f"/proc/{pid}/fd/{fd}")[len("socket:[") : -1]
        for pid in pids
        for fd in os.listdir(f"/proc/{pid}/fd")
        if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")
    }
    listening = [
        fields[1]
        for table in ("/proc/net/tcp", "/proc/net/tcp6")
        for fields in (line.split() for line in Path(table).read_text().splitlines()[1:])
        if fields[3] == "0A" and fields[9] in inodes
    ]
    loopback = f"{socket.htonl(0x7F000001):08X}"
    assert sorted(listening) == sorted(
        f"{loopback}:{port:04X}" for port in (edge.proxy.port, edge.app.port)
    )


def _family(pid: int) -> set[int]:
    """`pid` and its descendants."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {pid}.union(*(_family(int(child)) for child in children))


def test_without_a_worker_the_proxy_answers_503_to_retry(tmp_path: Path) -> None:
    with nginx(tmp_path, free_port(), free_port()) as proxy, proxy.client("127.0.0.2") as http:
        response = http.put("/v1/users/u-1", json=record("users", "u-1"))
    assert_problem(response, 503, "service-unavailable")
    assert response.headers["retry-after"] == "1"
    assert "Idempotency-Key" in response.json()["detail"]
