"""JSON logs of a real `clubfeed serve` on both databases: one line per request with its
fields and request id, no secret anywhere, uvicorn's lines in the same format, and
clients that leave early logged as info, not as error tracebacks."""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Iterator
from datetime import datetime

import httpx
import msgspec
import pytest
from sqlalchemy import Engine

from clubfeed.auth import sessions
from clubfeed.settings import Settings
from clubfeed.web.observe import Observer
from clubfeed.web.pages import LOGIN_CSRF_COOKIE
from tests.conftest import Server
from tests.consolekit import PASSWORD, log_in, new_admin
from tests.factories import Api, Tenant, new_tenant, record
from tests.oauthkit import (
    approve,
    authorize_params,
    exchange,
    logged_in_admin,
    new_app,
    pkce,
    refresh,
)
from tests.servekit import Served, served

ACCESS_KEYS = {
    "event",
    "request_id",
    "level",
    "logger",
    "timestamp",
    "method",
    "route",
    "status",
    "duration_ms",
    "client",
    "integrator_id",
    "business_id",
}
REFS = {"locations": "loc-1", "users": "u-1"}
GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def logged(db: Engine, db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    env = {"CLUBFEED_LOG_FORMAT": "json"}
    with served(db_url, tmp_path_factory.mktemp("logs"), env=env) as running:
        yield running


@pytest.fixture
def http(logged: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=logged.base_url, timeout=60, follow_redirects=False) as client:
        yield client


def seeded(http: httpx.Client, db: Engine, checkins: int = 0) -> Api:
    api = Api(http, new_tenant(db))
    assert api.put("locations", "loc-1", record("locations", "loc-1")).status_code == 201
    assert api.put("users", "u-1", record("users", "u-1", REFS)).status_code == 201
    if checkins:
        batch = [record("checkins", f"c-{i}", REFS) for i in range(checkins)]
        assert api.batch("checkins", batch).status_code == 200
    return api


def test_a_full_flow_leaves_no_secret_in_the_log(
    logged: Served, http: httpx.Client, db: Engine
) -> None:
    api = seeded(http, db)
    tenant: Tenant = api.tenant
    used = [tenant.business.shared_secret, tenant.business.ingest_key, tenant.integrator.key]
    locations = [record("locations", f"loc-{i}") for i in range(2, 5)]
    assert api.batch("locations", locations).status_code == 200
    # Shared-secret paging, by next_cursor and by the Link header.
    page = api.get("/v1/locations", params={"limit": 1}).json()
    used.append(page["next_cursor"])
    linked = api.get("/v1/locations", params={"cursor": page["next_cursor"], "limit": 1})
    used.append(linked.json()["next_cursor"])
    assert api.get(linked.links["next"]["url"]).status_code == 200
    # OAuth: consent, code exchange, refresh, a read with the access token.
    app = new_app(db)
    admin = logged_in_admin(db, tenant.business.id)
    proof = pkce()
    code = approve(http, admin, authorize_params(app, proof))
    tokens = exchange(http, app, code, proof.verifier).json()
    renewed = refresh(http, app, tokens["refresh_token"]).json()
    token_read = http.get(
        "/v1/checkins",
        headers={"X-Integrator-Key": app.key, "Authorization": f"Bearer {renewed['access_token']}"},
    )
    assert token_read.status_code == 200
    used += [app.key, app.client_secret, code, proof.verifier, admin.cookie, admin.csrf_token]
    used += [tokens["access_token"], tokens["refresh_token"]]
    used += [renewed["access_token"], renewed["refresh_token"]]
    # Console login with a password.
    login = log_in(http, new_admin(db, tenant.business.id).email)
    assert login.status_code == 303
    used += [PASSWORD, login.cookies[sessions.COOKIE], http.cookies[LOGIN_CSRF_COOKIE]]
    assert http.get("/console", headers={"X-Request-ID": "flow-last"}).status_code == 200

    logged.line_of("flow-last")  # lines are written once their response is sent
    lines = logged.json_lines()

    assert len(set(used)) == 18 and all(len(secret) >= 12 for secret in used)
    text = logged.log.read_text()
    assert [secret for secret in used if secret in text] == []
    requests = {
        (line["method"], line["route"], line["status"])
        for line in lines
        if line["logger"] == "clubfeed.access" and line["business_id"] == tenant.business.id
    }
    assert {
        ("POST", "/v1/locations/batch", 200),
        ("GET", "/v1/locations", 200),
        ("GET", "/v1/checkins", 200),
        ("GET", "/console", 200),
    } <= requests
    flow = {
        (line["method"], line["route"], line["status"])
        for line in lines
        if line["logger"] == "clubfeed.access"
    }
    assert {
        ("GET", "/oauth/authorize", 200),
        ("POST", "/oauth/authorize", 303),
        ("POST", "/oauth/token", 200),
        ("GET", "/console/login", 200),
        ("POST", "/console/login", 303),
    } <= flow


def test_a_read_logs_one_line_with_its_fields(
    logged: Served, http: httpx.Client, db: Engine
) -> None:
    api = seeded(http, db)

    headers = {**api.tenant.read_headers, "X-Request-ID": "read-fields-1"}
    response = http.get("/v1/locations/loc-1", headers=headers)

    assert response.headers["x-request-id"] == "read-fields-1"
    line = logged.line_of("read-fields-1")
    assert set(line) == ACCESS_KEYS
    assert line["event"] == "request"
    assert line["level"] == "info"
    assert line["logger"] == "clubfeed.access"
    assert line["method"] == "GET"
    assert line["route"] == "/v1/locations/{record_id}"
    assert line["status"] == 200
    assert line["client"] == "127.0.0.1"
    assert line["integrator_id"] == api.tenant.integrator.id
    assert line["business_id"] == api.tenant.business.id
    assert isinstance(line["duration_ms"], float) and 0 < line["duration_ms"] < 10_000
    assert line["timestamp"].endswith("Z") and datetime.fromisoformat(line["timestamp"])


def test_a_write_logs_its_business_and_no_integrator(
    logged: Served, http: httpx.Client, db: Engine
) -> None:
    api = Api(http, new_tenant(db))

    headers = {**api.tenant.write_headers, "X-Request-ID": "w-1"}
    http.put("/v1/locations/loc-1", json=record("locations", "loc-1"), headers=headers)

    line = logged.line_of("w-1")
    assert (line["route"], line["status"]) == ("/v1/locations/{record_id}", 201)
    assert (line["business_id"], line["integrator_id"]) == (api.tenant.business.id, None)


def test_request_ids_are_kept_when_sane_and_made_otherwise(
    logged: Served, http: httpx.Client
) -> None:
    longest = "r" * 128
    for sane in ("ops-trace-42:a/b", longest):
        response = http.get("/healthz", headers={"X-Request-ID": sane})
        assert response.headers["x-request-id"] == sane
        assert logged.line_of(sane)["route"] == "/healthz"
    made = []
    for insane in (b"", b"two words", b"r" * 129, "caf\u00e9".encode(), b"tab\there", None):
        headers = [] if insane is None else [(b"X-Request-ID", insane)]
        response = http.get("/healthz", headers=headers)
        request_id = response.headers["x-request-id"]
        assert GENERATED.fullmatch(request_id), request_id
        assert logged.line_of(request_id)["status"] == 200
        made.append(request_id)
    assert len(set(made)) == len(made)


def test_uvicorn_lines_are_json_too(logged: Served) -> None:
    lines = logged.json_lines()

    assert {line["logger"] for line in lines} >= {"uvicorn.error", "clubfeed", "clubfeed.access"}
    started = [line for line in lines if line["event"].startswith("Started server process")]
    assert len(started) == 1 and started[0]["level"] == "info"
    banner = next(line for line in lines if line["logger"] == "clubfeed")
    assert banner["event"].startswith("clubfeed serving")


def _raw(served_at: Served, head: str, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", served_at.port))
    sock.sendall(head.encode() + body)
    return sock


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset, as a client that crashes does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_clients_that_leave_early_are_info_not_errors(
    logged: Served, http: httpx.Client, db: Engine
) -> None:
    api = seeded(http, db, checkins=10_000)
    credentials = "".join(f"{k}: {v}\r\n" for k, v in api.tenant.read_headers.items())
    ingest = "".join(f"{k}: {v}\r\n" for k, v in api.tenant.write_headers.items())

    page = _raw(
        logged,
        "GET /v1/checkins?limit=10000 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: leaves-mid-page\r\n"
        f"{credentials}\r\n",
    )
    assert page.recv(4096).startswith(b"HTTP/1.1 200 OK")
    _reset(page)
    upload = _raw(
        logged,
        "POST /v1/checkins/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: leaves-mid-body\r\n"
        f"Content-Type: application/json\r\nContent-Length: 1000000\r\n{ingest}\r\n",
        b'{"upsert": [' + msgspec.json.encode(record("checkins", "c-x", REFS)),
    )
    _reset(upload)

    left_page = logged.line_of("leaves-mid-page")
    left_body = logged.line_of("leaves-mid-body")
    assert (left_page["route"], left_page["status"], left_page["level"]) == (
        "/v1/checkins",
        200,
        "info",
    )
    assert (left_body["route"], left_body["status"], left_body["level"]) == (
        "/v1/checkins/batch",
        499,
        "info",
    )
    text = logged.log.read_text()
    assert "Traceback" not in text
    assert [line for line in logged.json_lines() if line["level"] not in ("info",)] == []


def test_access_log_and_metrics_switch_off(db: Engine, db_url: str) -> None:
    assert Settings.from_env({"CLUBFEED_ACCESS_LOG": "0"}).access_log is False
    assert Settings.from_env({}).access_log is True
    quiet = Settings(database_url=db_url, access_log=False)
    with Server(quiet) as running, httpx.Client(base_url=running.base_url) as client:
        response = client.get("/healthz", headers={"X-Request-ID": "not-echoed"})
        assert response.status_code == 200 and "x-request-id" not in response.headers
        assert client.get("/metrics").status_code == 200
    bare = Settings(database_url=db_url, access_log=False, metrics="off")
    with Server(bare) as running:
        app = running.server.config.app
        assert Observer not in [middleware.cls for middleware in app.user_middleware]
