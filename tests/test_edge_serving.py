"""Edge limits of a real `clubfeed serve` process, probed over raw sockets with short timeouts.

Heads, bodies and idle keep-alive connections that stall are closed on time; a flood of
stalled connections neither starves a normal request nor stays open; SIGTERM lets an
in-flight request finish and never waits on a stalling client past the grace.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from clubfeed.storage.engine import make_engine
from clubfeed.storage.migrate import upgrade
from tests.conftest import _free_port
from tests.factories import Tenant, new_tenant, record

CLUBFEED = Path(sys.executable).parent / "clubfeed"
PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
SLACK = 1.0  # seconds a timer may run late on this shared machine


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def connect(self, data: bytes = b"") -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port))
        if data:
            sock.sendall(data)
        return sock

    def get(self, path: str, **kw: object) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5, **kw)  # type: ignore[arg-type]

    def exited_within(self, seconds: float) -> int:
        """The exit status, once the process has exited; fails after `seconds`."""
        deadline = time.monotonic() + seconds
        while (code := self.process.poll()) is None:
            assert time.monotonic() < deadline, f"still running after {seconds} s"
            time.sleep(0.05)
        return code


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Tenant]:
    url = f"sqlite:///{tmp_path_factory.mktemp('edge') / 'edge.db'}"
    engine = make_engine(url)
    upgrade(engine)
    tenant = new_tenant(engine)
    engine.dispose()
    return url, tenant


@contextmanager
def serve(
    url: str, tmp_path: Path, *, open_files: int | None = None, **settings: str
) -> Iterator[Served]:
    """`clubfeed serve` with these CLUBFEED_* settings, once it answers /healthz.

    `open_files` starts it with that soft limit on open files (as systemd's 1,024 would).
    """

    def limit_open_files() -> None:
        if open_files is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))

    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUBFEED_")}
    env.update({f"CLUBFEED_{name.upper()}": value for name, value in settings.items()})
    env["CLUBFEED_DATABASE_URL"] = url
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [str(CLUBFEED), "serve", "--port", str(port)],
            env=env,
            stdout=stderr,
            stderr=stderr,
            preexec_fn=limit_open_files,
        )
    served = Served(process, port, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if served.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield served
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def closed_after(
    sockets: dict[str, socket.socket], trickle: set[str], within: float
) -> dict[str, float]:
    """Seconds until the server closed each socket; those in `trickle` send a byte every 0.2 s."""
    start = time.monotonic()
    closed: dict[str, float] = {}
    with selectors.DefaultSelector() as selector:
        for name, sock in sockets.items():
            selector.register(sock, selectors.EVENT_READ, name)
        last_trickle = start
        while len(closed) < len(sockets):
            assert time.monotonic() - start < within, f"still open: {set(sockets) - set(closed)}"
            for key, _ in selector.select(0.05):
                try:
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                except ConnectionResetError:
                    data = b""
                if not data:
                    closed[key.data] = time.monotonic() - start
                    selector.unregister(key.fileobj)
            if time.monotonic() - last_trickle >= 0.2:
                last_trickle = time.monotonic()
                for name in trickle - set(closed):
                    with suppress(OSError):
                        sockets[name].send(b"X")
    return closed


def read_response(sock: socket.socket) -> tuple[http.client.HTTPResponse, bytes]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response, response.read()


def healthz_exchange(sock: socket.socket) -> None:
    sock.sendall(PARTIAL_HEAD + b"\r\n")
    response, body = read_response(sock)
    assert (response.status, body) == (200, b'{"status":"ok"}')


def test_heads_and_idle_connections_are_closed_on_time(
    database: tuple[str, Tenant], tmp_path: Path
) -> None:
    url, _ = database
    with serve(url, tmp_path, header_timeout="1", keepalive_timeout="2") as server:
        silent = server.connect()
        slowloris = server.connect(PARTIAL_HEAD)
        idle, second_head = server.connect(), server.connect()
        healthz_exchange(idle)
        healthz_exchange(second_head)
        second_head.sendall(b"GET /healthz HTTP/1.1\r\n")
        sockets = {"silent": silent, "slowloris": slowloris, "idle": idle, "second": second_head}
        closed = closed_after(sockets, trickle={"slowloris", "second"}, within=2 + 2 * SLACK)
    # A head's deadline counts from the connection (or its first byte after a response),
    # whatever trickles in; idle keep-alive connections wait the keep-alive timeout.
    for name in ("silent", "slowloris", "second"):
        assert 0.9 <= closed[name] <= 1 + SLACK, closed
    assert 1.9 <= closed["idle"] <= 2 + SLACK, closed


def _put_head(tenant: Tenant, length: int, *, expect_continue: bool = False) -> bytes:
    lines = [
        "PUT /v1/locations/loc-edge HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {tenant.business.ingest_key}",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        *(["Expect: 100-continue"] if expect_continue else []),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


LOCATION = json.dumps(record("locations", "loc-edge", name="Edge Gym")).encode()


def test_a_stalled_body_answers_408_and_closes(
    database: tuple[str, Tenant], tmp_path: Path
) -> None:
    url, tenant = database
    with serve(url, tmp_path, body_timeout="1") as server:
        sock = server.connect(_put_head(tenant, len(LOCATION)) + LOCATION[:10])
        start = time.monotonic()
        response, body = read_response(sock)
        elapsed = time.monotonic() - start
        assert sock.recv(1) == b""
    assert 0.9 <= elapsed <= 1 + SLACK
    assert response.status == 408
    assert response.getheader("content-type") == "application/problem+json"
    assert response.getheader("connection") == "close"
    assert response.getheader("cache-control") == "no-store"
    assert json.loads(body) == {
        "type": "/problems/request-timeout",
        "title": "Request timeout",
        "status": 408,
        "detail": "The request body stalled: nothing arrived for 1 s. "
        "Send the whole body without pausing, then retry.",
    }


def test_a_thousand_stalled_connections_neither_starve_nor_stay(
    database: tuple[str, Tenant], tmp_path: Path
) -> None:
    url, tenant = database
    # Started with room for 512 open files, it raises its own limit to fit 1,010 connections.
    with serve(url, tmp_path, open_files=512, header_timeout="3", max_connections="1010") as server:
        stalled = {str(i): server.connect(PARTIAL_HEAD) for i in range(1000)}
        start = time.monotonic()
        served = server.get("/v1/locations", headers=tenant.read_headers)
        assert time.monotonic() - start < 1
        assert served.status_code == 200, served.text
        stalled |= {f"more-{i}": server.connect(PARTIAL_HEAD) for i in range(10)}
        busy = server.get("/v1/locations", headers=tenant.read_headers)
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1"
        assert busy.headers["connection"] == "close"
        assert busy.headers["content-type"] == "application/problem+json"
        assert busy.json() == {
            "type": "/problems/service-unavailable",
            "title": "Service unavailable",
            "status": 503,
            "detail": "This server process is at its connection limit; retry in a second.",
        }
        closed_after(stalled, trickle=set(), within=3 + 2 * SLACK)
        assert server.get("/v1/locations", headers=tenant.read_headers).status_code == 200


def test_sigterm_lets_a_slow_request_finish(database: tuple[str, Tenant], tmp_path: Path) -> None:
    url, tenant = database
    with serve(url, tmp_path, body_timeout="1", shutdown_grace="10") as server:
        sock = server.connect(_put_head(tenant, len(LOCATION), expect_continue=True))
        # The app asks for the body only once the ingest key checks out.
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        server.process.send_signal(signal.SIGTERM)
        third = len(LOCATION) // 3 + 1
        for offset in range(0, len(LOCATION), third):
            time.sleep(0.4)  # a slow client, well inside the body timeout
            sock.sendall(LOCATION[offset : offset + third])
        response, body = read_response(sock)
        assert response.status == 201, body
        assert json.loads(body)["name"] == "Edge Gym"
        assert response.getheader("connection") == "close"
        code = server.exited_within(5)
    log = server.log.read_text()
    assert code in (0, -signal.SIGTERM), log
    assert "Application shutdown complete" in log and "Traceback" not in log


def test_sigterm_exits_within_the_grace_despite_a_stalling_client(
    database: tuple[str, Tenant], tmp_path: Path
) -> None:
    url, tenant = database
    with serve(url, tmp_path, body_timeout="60", header_timeout="60", shutdown_grace="1") as server:
        stalling = server.connect(_put_head(tenant, len(LOCATION), expect_continue=True))
        assert stalling.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        stalling.sendall(LOCATION[:5])
        half_head = server.connect(PARTIAL_HEAD)
        start = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        response, body = read_response(stalling)
        answered = time.monotonic() - start
        code = server.exited_within(1 + 2 * SLACK)
    # Its body never came, so nothing was written: a 503 says to retry (uvicorn alone
    # would cancel the request into a plain 500).
    assert 0.9 <= answered <= 1 + SLACK
    assert response.status == 503
    assert response.getheader("retry-after") == "1"
    assert json.loads(body) == {
        "type": "/problems/service-unavailable",
        "title": "Service unavailable",
        "status": 503,
        "detail": "This server is shutting down and the request body had not arrived; retry.",
    }
    assert code in (0, -signal.SIGTERM), server.log.read_text()
    assert stalling.recv(1) == b"" and half_head.recv(1) == b""
