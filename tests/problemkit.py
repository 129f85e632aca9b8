"""Checks shared by the error, auth, ingest and OpenAPI tests: problem bodies, feed state, raw HTTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from clubfeed import catalogue
from tests.factories import Api

PROBLEM_JSON = "application/problem+json"
EPOCH = "1970-01-01T00:00:00+00:00"
UTC_INSTANT = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$"
LEAK_MARKERS = ("Traceback", 'File "', "sqlalchemy", "psycopg", "sqlite3", "SELECT ", "INSERT ")


def assert_problem(
    response: httpx.Response, status: int, slug: str, *, pointer: str | None = None
) -> dict[str, Any]:
    """An RFC 9457 body with exactly this status and type, no internals; returns the body.

    `pointer` is the place errors[0] must name, when the problem lists places.
    """
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and len(body["detail"]) > 20, body
    assert set(body) <= {
        "type",
        "title",
        "status",
        "detail",
        "errors",
        "errors_not_listed",
        "violated-policies",
    }
    assert not any(marker in response.text for marker in LEAK_MARKERS), response.text
    if pointer is not None:
        assert body["errors"][0]["pointer"] == pointer, body
    return body


def feed_state(api: Api) -> dict[str, list[dict[str, Any]]]:
    """Every change a business's feed holds, tombstones included, for every resource."""
    return {
        r.name: api.read_all(f"/v1/{r.name}", modified_since=EPOCH, limit=10_000)
        for r in catalogue.RESOURCES
    }


@contextmanager
def nothing_written(api: Api) -> Iterator[None]:
    """Assert that the block leaves the business's feed exactly as it was."""
    before = feed_state(api)
    yield
    assert feed_state(api) == before


def consistent_until(api: Api, resource: str) -> str:
    """Where a poller's next window would start now: changes from here on are new."""
    response = api.get(f"/v1/{resource}", params={"modified_since": EPOCH, "limit": 1})
    assert response.status_code == 200, response.text
    until: str = response.json()["consistent_until"]
    return until


def changes_since(api: Api, resource: str, since: str) -> list[dict[str, Any]]:
    """The feed entries of `resource` modified at or after `since`."""
    return api.read_all(f"/v1/{resource}", modified_since=since)


def raw_http(base_url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes no HTTP client would send; (status, headers, body) of the answer."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65_536):
                answer += chunk
        except ConnectionResetError:
            pass  # the server may close before reading a body it refused
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body
