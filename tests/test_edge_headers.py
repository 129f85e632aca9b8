"""What the edge writes into answers: URLs from the public URL or an allowed Host, never a
client's choice, and /v1 answers that no cache stores and no browser sniffs.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from clubfeed.settings import Settings
from clubfeed.web.serving import MAX_HEAD_BYTES
from tests.conftest import Server
from tests.factories import Api, record
from tests.problemkit import assert_problem, raw_http

EVIL = "evil.example"
PUBLIC = "https://api.vendor.example/feed"


def _two_pages(api: Api, **headers: str) -> tuple[httpx.Response, str]:
    """The first page of two locations, one a page; with its next cursor."""
    for record_id in ("loc-a", "loc-b"):
        assert api.put("locations", record_id, record("locations", record_id)).status_code == 201
    page = api.client.get(
        "/v1/locations", params={"limit": 1}, headers={**api.tenant.read_headers, **headers}
    )
    assert page.status_code == 200, page.text
    cursor: str = page.json()["next_cursor"]
    return page, cursor


def _next(base: str, cursor: str) -> str:
    return f'<{base}/v1/locations?limit=1&cursor={cursor}>; rel="next"'


def test_link_names_the_allowed_host_it_was_asked_on(api: Api, server: Server) -> None:
    page, cursor = _two_pages(api, Host=f"localhost:{server.port}")
    assert page.headers["link"] == _next(f"http://localhost:{server.port}", cursor)


def test_another_host_is_refused_and_healthz_still_answers(api: Api, server: Server) -> None:
    answer = api.client.get("/v1/locations", headers={**api.tenant.read_headers, "Host": EVIL})
    body = assert_problem(answer, 400, "bad-request")
    assert body["detail"] == (
        f"This server does not answer for the host {EVIL!r}. Use its public address; its "
        "operator lists the names it answers for in CLUBFEED_ALLOWED_HOSTS or CLUBFEED_PUBLIC_URL."
    )
    metadata = api.client.get("/.well-known/oauth-authorization-server", headers={"Host": EVIL})
    assert_problem(metadata, 400, "bad-request")
    assert api.client.get("/healthz", headers={"Host": EVIL}).status_code == 200
    assert_problem(api.client.get("/console/login", headers={"Host": EVIL}), 400, "bad-request")


def test_a_host_with_a_path_or_credentials_in_it_is_refused(api: Api) -> None:
    for host in ("127.0.0.1:1/evil", "localhost:8000@evil.example", "localhost:port", ""):
        answer = api.client.get("/v1/locations", headers={**api.tenant.read_headers, "Host": host})
        assert_problem(answer, 400, "bad-request")


def test_a_trusted_proxy_names_host_and_scheme(api: Api, server: Server) -> None:
    # The test server trusts loopback, as `clubfeed serve` does by default.
    forwarded = {"X-Forwarded-Host": "localhost:8443", "X-Forwarded-Proto": "https"}
    page, cursor = _two_pages(api, Host=EVIL, **forwarded)
    assert page.headers["link"] == _next("https://localhost:8443", cursor)
    lying = api.client.get(
        "/v1/locations", headers={**api.tenant.read_headers, "X-Forwarded-Host": EVIL}
    )
    assert_problem(lying, 400, "bad-request")


@pytest.fixture
def untrusting(db: Engine, db_url: str) -> Iterator[Server]:
    with Server(Settings(database_url=db_url), forwarded_allow_ips="10.9.9.9") as running:
        yield running


def test_an_untrusted_peer_cannot_name_the_host(api: Api, untrusting: Server) -> None:
    with httpx.Client(base_url=untrusting.base_url) as client:
        page, cursor = _two_pages(Api(client, api.tenant), **{"X-Forwarded-Host": EVIL})
    assert page.headers["link"] == _next(untrusting.base_url, cursor)


@pytest.fixture
def public(db: Engine, db_url: str) -> Iterator[httpx.Client]:
    with (
        Server(Settings(database_url=db_url, public_url=PUBLIC + "/")) as running,
        httpx.Client(base_url=running.base_url) as client,
    ):
        yield client


def test_the_public_url_makes_every_absolute_url(api: Api, public: httpx.Client) -> None:
    page, cursor = _two_pages(Api(public, api.tenant), Host="api.vendor.example")
    assert page.headers["link"] == _next(PUBLIC, cursor)
    metadata = public.get("/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == PUBLIC
    assert metadata["token_endpoint"] == f"{PUBLIC}/oauth/token"
    refused = public.get("/v1/locations", headers={**api.tenant.read_headers, "Host": EVIL})
    assert_problem(refused, 400, "bad-request")
    described = public.get("/openapi.json", headers={"Host": "api.vendor.example"}).json()
    assert described["servers"] == [{"url": PUBLIC}]


def test_allowed_hosts_may_name_a_domain_and_replace_loopback(db: Engine, db_url: str) -> None:
    settings = Settings(database_url=db_url, allowed_hosts=("*.gym.example",))
    with Server(settings) as running, httpx.Client(base_url=running.base_url) as client:
        metadata = client.get(
            "/.well-known/oauth-authorization-server", headers={"Host": "api.gym.example:8443"}
        )
        assert metadata.json()["issuer"] == "http://api.gym.example:8443"
        for host in ("gym.example", "api.gym.example.evil", f"127.0.0.1:{running.port}"):
            answer = client.get("/.well-known/oauth-authorization-server", headers={"Host": host})
            assert_problem(answer, 400, "bad-request")


def _private(response: httpx.Response) -> None:
    assert response.headers.get_list("cache-control") == ["no-store"], response.headers
    assert response.headers.get_list("x-content-type-options") == ["nosniff"], response.headers


def test_every_v1_answer_is_private(api: Api, server: Server) -> None:
    refs = api.seed()
    location = refs["locations"]
    read: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v1/locations", {}),
        ("GET", "/v1/locations?limit=1", {}),
        ("GET", f"/v1/locations/{location}", {}),
        ("GET", "/v1/locations?ids=nope", {}),
        ("POST", "/v1/locations/lookup", {"json": {"ids": [location]}}),
        ("GET", "/v1/locations/nope", {}),
        ("GET", "/v1/nope", {}),
        ("GET", "/v1", {}),
        ("GET", "/v1/locations?limit=0", {}),
        ("PATCH", "/v1/locations/x", {}),
    ]
    for method, path, options in read:
        _private(api.client.request(method, path, headers=api.tenant.read_headers, **options))
    _private(api.client.get("/v1/locations"))  # 401
    _private(api.put("locations", location, record("locations", location)))
    _private(api.put("locations", "bad", {"name": 1}))  # 422
    _private(api.batch("locations", delete=["nope"]))
    _private(api.delete("locations", location))
    _private(api.client.get("/v1/locations", headers={"Host": EVIL}))
    assert "cache-control" not in api.client.get("/openapi.json").headers


def test_a_head_too_long_is_refused_not_buffered(server: Server) -> None:
    start = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: " + b"a" * MAX_HEAD_BYTES
    # Whole and over the limit; or never ending, which httptools would buffer without end.
    for request in (start + b"\r\n\r\n", start + b"a" * MAX_HEAD_BYTES):
        status, headers, body = raw_http(server.base_url, request)
        assert (status, headers["connection"]) == (431, "close")
        assert json.loads(body) == {
            "type": "/problems/headers-too-large",
            "title": "Request header fields too large",
            "status": 431,
            "detail": "The request line and headers are over 131,072 bytes; "
            "send long id lists to POST /v1/<resource>/lookup instead.",
        }


def test_a_body_sent_after_an_early_answer_is_not_taken_for_a_head(server: Server) -> None:
    """An endpoint may answer (405, 401) before the body is read; the rest of that body,
    however long, is still that request's, never the start of an oversized next head."""
    body = b"x" * (3 * MAX_HEAD_BYTES)
    head = (
        b"DELETE /v1/users/lookup HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 405 "), first[:200]
        for start in range(0, len(body), 16384):
            sock.sendall(body[start : start + 16384])
        sock.shutdown(socket.SHUT_WR)
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
    assert b"431" not in rest, rest[:300]


def test_edge_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "CLUBFEED_HEADER_TIMEOUT": "3",
            "CLUBFEED_BODY_TIMEOUT": "4",
            "CLUBFEED_KEEPALIVE_TIMEOUT": "5",
            "CLUBFEED_MAX_CONNECTIONS": "6",
            "CLUBFEED_SHUTDOWN_GRACE": "7",
            "CLUBFEED_ALLOWED_HOSTS": " API.Vendor.example, *.gym.example ,",
        }
    )
    edge = (
        settings.header_timeout_s,
        settings.body_timeout_s,
        settings.keepalive_timeout_s,
        settings.max_connections,
        settings.shutdown_grace_s,
    )
    assert edge == (3, 4, 5, 6, 7)
    assert settings.allowed_hosts == ("api.vendor.example", "*.gym.example")
    defaults = Settings.from_env({})
    assert (defaults.header_timeout_s, defaults.body_timeout_s) == (10, 20)
    assert defaults.allowed_hosts == ("localhost", "127.0.0.1", "::1")
    with pytest.raises(ValueError, match="CLUBFEED_BODY_TIMEOUT must be at least 1, not 0"):
        Settings.from_env({"CLUBFEED_BODY_TIMEOUT": "0"})
